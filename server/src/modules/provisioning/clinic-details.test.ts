/**
 * What the console shows of a clinic and its runs: admin, creation date, DNS records, certificate;
 * runs and their events named from the start, a failed registration's run still named after its
 * clinic was rolled back, and one run by id.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp, wsQuery } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';

const REGISTER = `mutation ($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { clinic { id } user { email } }
    ... on ProvisioningFailedError { runId step }
  }
}`;

describe('clinic details and named runs', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const operator = await t.superAdmin();
  let counter = 0;
  const register = async (clinicName: string) => {
    counter += 1;
    const adminEmail = `details${counter}-${Date.now()}@example.com`;
    const { body } = await t.gql<{
      registerClinic: { __typename: string; clinic?: { id: string }; runId?: string; step?: string };
    }>(REGISTER, {
      input: {
        clinicName,
        country: 'FR',
        adminEmail,
        adminPassword: 'a sturdy passphrase 42',
        adminFirstName: 'Ada',
        adminLastName: 'Lovelace',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    return { ...body.data?.registerClinic, adminEmail };
  };

  it("shows a clinic's admin, creation date, DNS records and certificate", async () => {
    const done = await register('Clinique Détails');
    const clinicId = done.clinic?.id as string;
    const { body } = await t.gql<{
      clinic: Record<string, unknown>;
      clinicsHealth: { clinics: { clinicId: string; createdAt: string; admin: { email: string } }[] };
    }>(
      `query ($id: ID!) {
        clinic(id: $id) {
          fqdn createdAt
          admin { email firstName lastName emailVerified }
          dnsRecords { name type value ttl }
          certificate { fqdn provider issuer serialNumber notBefore notAfter }
        }
        clinicsHealth { clinics { clinicId createdAt admin { email } } }
      }`,
      { id: clinicId },
      operator,
    );
    const fqdn = `clinique-details.${t.config.baseDomain}`;
    expect(body.data?.clinic).toMatchObject({
      fqdn,
      admin: { email: done.adminEmail, firstName: 'Ada', lastName: 'Lovelace', emailVerified: false },
      dnsRecords: [{ name: fqdn, type: 'A', value: '127.0.0.1', ttl: 300 }],
      certificate: { fqdn, provider: 'builtin' },
    });
    const certificate = body.data?.clinic.certificate as {
      issuer: string;
      notAfter: string;
      notBefore: string;
    };
    expect(certificate.issuer).toMatch(/CN=/);
    const days = (Date.parse(certificate.notAfter) - Date.parse(certificate.notBefore)) / 86_400_000;
    expect(Math.round(days)).toBe(90);
    const row = body.data?.clinicsHealth.clinics.find((clinic) => clinic.clinicId === clinicId);
    expect(row?.admin.email).toBe(done.adminEmail);
    expect(Date.parse(row?.createdAt as string)).toBe(Date.parse(body.data?.clinic.createdAt as string));

    // A clinic admin sees their own clinic, not its infrastructure.
    const answer = await t.gql(`query ($id: ID!) { clinic(id: $id) { dnsRecords { value } } }`, {
      id: clinicId,
    });
    expect(answer.body.data?.clinic ?? null).toBeNull();
  });

  it('names runs and their events from the first event, and keeps the name after a rollback', async () => {
    const client = t.ws({ connectionParams: operator });
    const names: (string | null)[] = [];
    const firstEvent = new Promise<void>((resolve, reject) => {
      client.subscribe<{ provisioningProgress: { clinicName: string | null; step: string } }>(
        { query: 'subscription { provisioningProgress { clinicName step status } }' },
        {
          next: ({ data }) => {
            if (!data) return;
            names.push(data.provisioningProgress.clinicName);
            if (names.length === 1) resolve();
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    await wsQuery(client, '{ health { status } }');
    await new Promise((resolve) => setTimeout(resolve, 200));
    t.app.deps.provisioning.injectFault('seed_provider', 1);
    const failed = await register('Clinique Éphémère');
    expect(failed).toMatchObject({ __typename: 'ProvisioningFailedError', step: 'seed_provider' });
    await firstEvent;
    expect(names[0]).toBe('Clinique Éphémère');
    expect(new Set(names)).toEqual(new Set(['Clinique Éphémère']));

    const { body } = await t.gql<{
      provisioningRun: { clinicName: string; status: string; error: string; steps: { name: string }[] };
      provisioningRuns: { id: string; clinicName: string }[];
    }>(
      `query ($id: ID!) {
        provisioningRun(id: $id) { clinicName status error steps { name status } }
        provisioningRuns(first: 5) { id clinicName }
      }`,
      { id: failed.runId },
      operator,
    );
    expect(body.data?.provisioningRun).toMatchObject({
      clinicName: 'Clinique Éphémère',
      status: 'ROLLED_BACK',
      error: expect.stringContaining('seed_provider'),
    });
    expect(body.data?.provisioningRuns[0]).toEqual({ id: failed.runId, clinicName: 'Clinique Éphémère' });

    const unknown = await t.gql(
      '{ provisioningRun(id: "00000000-0000-4000-8000-000000000000") { id } }',
      undefined,
      operator,
    );
    expect(unknown.body.data).toEqual({ provisioningRun: null });
  });
});
