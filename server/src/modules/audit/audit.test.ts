/**
 * The audit log has no holes: operator actions carry their actor (GraphQL and REST), registrations
 * are audited whether they succeed or fail, and entries read with actor and clinic names.
 */
import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, clinicWithAdmin } from '../../../test/registration-flow.js';
import { quoteIdent, withClient } from '../../db/sql.js';

const pgAdmin = inject('pgAdminUrl');

const REGISTER = `mutation ($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { clinic { id name databaseName: subdomain } user { id email } }
    ... on ProvisioningFailedError { step runId }
  }
}`;

const AUDIT = `query ($action: String, $clinicId: ID, $actorId: ID) {
  auditLog(first: 50, action: $action, clinicId: $clinicId, actorId: $actorId) {
    edges { node { action actorId actor { email firstName lastName role } clinicId clinicName clinic { id name } data } }
  }
}`;

interface Entry {
  action: string;
  actorId: string | null;
  actor: { email: string | null; firstName: string; lastName: string; role: string } | null;
  clinicId: string | null;
  clinicName: string | null;
  clinic: { id: string; name: string } | null;
  data: Record<string, unknown>;
}

describe('the audit log', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const operator = await t.superAdmin();
  const operatorUser = await prisma.user.findUniqueOrThrow({ where: { email: t.config.adminEmail } });
  let counter = 0;

  const register = async (clinicName: string) => {
    counter += 1;
    const { body } = await t.gql<{
      registerClinic: { __typename: string; clinic?: { id: string }; user?: { id: string; email: string } };
    }>(REGISTER, {
      input: {
        clinicName,
        country: 'FR',
        adminEmail: `audit${counter}-${Date.now()}@example.com`,
        adminPassword: 'a sturdy passphrase 42',
        adminFirstName: 'Ada',
        adminLastName: 'Lovelace',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    return body.data?.registerClinic;
  };
  const entries = async (variables: Record<string, unknown>) => {
    const { body } = await t.gql<{ auditLog: { edges: { node: Entry }[] } }>(AUDIT, variables, operator);
    if (!body.data) throw new Error(JSON.stringify(body.errors));
    return body.data.auditLog.edges.map((edge) => edge.node);
  };

  it('audits a successful registration, by its admin, with the clinic named', async () => {
    const done = await register('Clinique Audit');
    expect(done?.__typename).toBe('RegisterClinicSuccess');
    const [entry] = await entries({ action: 'registration.completed', clinicId: done?.clinic?.id });
    expect(entry).toMatchObject({
      action: 'registration.completed',
      actorId: done?.user?.id,
      actor: { email: done?.user?.email, firstName: 'Ada', lastName: 'Lovelace', role: 'CLINIC_ADMIN' },
      clinicName: 'Clinique Audit',
      clinic: { id: done?.clinic?.id, name: 'Clinique Audit' },
    });
  });

  it('audits a failed registration, with the name of the clinic that was rolled back', async () => {
    t.app.deps.provisioning.injectFault('seed_provider', 1);
    const failed = await register('Clinique Ratée');
    expect(failed).toMatchObject({ __typename: 'ProvisioningFailedError', step: 'seed_provider' });
    const family = await entries({ action: 'registration.' });
    const entry = family.find((e) => e.action === 'registration.failed');
    expect(entry).toMatchObject({
      actorId: null,
      clinic: null,
      clinicName: 'Clinique Ratée',
      data: { step: 'seed_provider', clinicName: 'Clinique Ratée' },
    });
    expect(family.map((e) => e.action)).toContain('registration.completed');
  });

  it('records the super-admin as the actor of repair (GraphQL and REST), retry and delete', async () => {
    const done = await register('Clinique Réparée');
    const clinicId = done?.clinic?.id as string;
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    await withClient(pgAdmin, (client) =>
      client.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`),
    );
    await t.app.deps.provisioning.clients.evict(clinicId);
    const repaired = await t.gql(
      'mutation ($id: ID!) { repairClinic(clinicId: $id) { __typename ... on RepairClinicSuccess { alreadyHealthy } } }',
      { id: clinicId },
      operator,
    );
    expect(repaired.body.data).toEqual({
      repairClinic: { __typename: 'RepairClinicSuccess', alreadyHealthy: false },
    });
    await withClient(pgAdmin, (client) =>
      client.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`),
    );
    await t.app.deps.provisioning.clients.evict(clinicId);
    const rest = await fetch(`${t.url}/api/v1/admin/clinics/${clinicId}/repair`, {
      method: 'POST',
      headers: operator,
    });
    expect(rest.status).toBe(200);

    await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'FAILED' } });
    const retried = await t.gql(
      'mutation ($id: ID!) { retryProvisioning(clinicId: $id) { __typename } }',
      { id: clinicId },
      operator,
    );
    expect(retried.body.data).toEqual({ retryProvisioning: { __typename: 'RetryProvisioningSuccess' } });
    // The retry job finishes the registration; wait for it before deleting.
    await expect
      .poll(async () => (await prisma.clinic.findUnique({ where: { id: clinicId } }))?.status, {
        timeout: 20_000,
      })
      .toBe('READY');
    const deleted = await t.gql(
      'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
      { id: clinicId },
      operator,
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });

    const mine = await entries({ clinicId });
    const byOperator = mine.filter((e) => e.actorId === operatorUser.id).map((e) => e.action);
    expect(byOperator.sort()).toEqual(
      [
        'clinic.delete',
        'clinic.repair',
        'clinic.repair',
        'clinic.retry_provisioning',
        // Each repair recreated the database of a READY clinic empty: a loss, said as such.
        'clinic.data_lost',
        'clinic.data_lost',
      ].sort(),
    );
    for (const entry of mine.filter((e) => e.actorId === operatorUser.id)) {
      expect(entry.actor).toMatchObject({ email: t.config.adminEmail, role: 'SUPER_ADMIN' });
      // A deleted clinic is kept (DELETED) for its retention, so its entries still link to it.
      expect(entry.clinic).toEqual({ id: clinicId, name: 'Clinique Réparée' });
    }
    // Without an actor: the registration's own entries, and the health monitor's report of the
    // database this test dropped (if a sweep saw it before the repair).
    const unattributed = mine.filter((e) => e.actorId === null).map((e) => e.action);
    expect(
      unattributed.filter(
        (action) => !action.startsWith('registration.') && action !== 'clinic.database_missing',
      ),
    ).toEqual([]);
    // Filter by actor.
    const theirs = await entries({ actorId: operatorUser.id, action: 'clinic.' });
    expect(theirs.length).toBeGreaterThanOrEqual(4);
    expect(theirs.every((e) => e.actorId === operatorUser.id)).toBe(true);
  });

  it("shows a clinic admin their clinic's entries only, whatever the filters name", async () => {
    const mine = await clinicWithAdmin(t, { clinicName: 'Audit mine', country: 'FR' });
    const theirs = await clinicWithAdmin(t, { clinicName: 'Audit theirs', country: 'FR' });
    const read = async (variables: Record<string, unknown>) => {
      const { body } = await t.gql<{ auditLog: { edges: { node: Entry }[] } }>(
        AUDIT,
        variables,
        mine.headers,
      );
      if (!body.data) throw new Error(JSON.stringify(body.errors));
      return body.data.auditLog.edges.map((edge) => edge.node);
    };
    // Both clinics have entries (registration, verification, sign-in): operators see them.
    expect((await entries({ clinicId: theirs.clinic.id })).length).toBeGreaterThan(0);
    expect(await read({ clinicId: theirs.clinic.id })).toEqual([]);
    expect(await read({ actorId: theirs.user.id })).toEqual([]);
    const own = await read({});
    expect(own.length).toBeGreaterThan(0);
    for (const entry of own) {
      expect(entry.clinicId).toBe(mine.clinic.id);
      expect(entry.clinic?.id ?? mine.clinic.id).toBe(mine.clinic.id);
    }
    expect(JSON.stringify(own)).not.toContain(theirs.user.email);
  });

  it('validates its filters', async () => {
    for (const [name, value] of [
      ['clinicId', 'not-a-uuid'],
      ['actorId', 'x'],
      ['action', 'auth.\u0000'],
    ] as const) {
      const { status, body } = await t.gql(AUDIT, { [name]: value }, operator);
      expect(status).toBeLessThan(500);
      expect(body.data?.auditLog ?? null).toBeNull();
      expect(body.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
      expect(body.errors?.[0]?.extensions?.fields).toMatchObject([{ path: [name] }]);
    }
  });
});
