/**
 * A registration whose admin never verified the e-mail is undone UNVERIFIED_CLINIC_TTL after it
 * was made (here 8 s, room for two registrations on a loaded machine before the checks below; the periodic pass runs every PROVISIONING_LEASE_SECONDS): certificate,
 * DNS records, its empty database and role, its central records, as a recorded DELETE run.
 * Its e-mail and subdomain can be registered again; a verified clinic is never touched.
 */
import { describe, expect, inject, it } from 'vitest';
import { query, rcodeOf, udpExchange } from '../../../test/dns-client.js';
import { startTestApp } from '../../../test/harness.js';
import { registerClinic, verifyEmail } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';

const t = await startTestApp({
  CLINIC_POOL_SIZE: '0',
  CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  UNVERIFIED_CLINIC_TTL: '8s',
  PROVISIONING_LEASE_SECONDS: '3',
});

const CLINIC = `query ($id: ID!) { clinic(id: $id) { id status subdomain databaseName } }`;
interface ClinicView {
  clinic: { id: string; status: string; subdomain: string; databaseName: string } | null;
}

describe('unverified registrations expire', () => {
  it('undoes the unverified one entirely, keeps the verified one, and frees the e-mail and the subdomain', async () => {
    const admin = await t.superAdmin();
    const suffix = Math.random().toString(36).slice(2, 8);
    const unverified = await registerClinic(t, { clinicName: `Expiring ${suffix}` });
    const verified = await registerClinic(t, { clinicName: `Confirmed ${suffix}` });
    const u = unverified.result?.clinic;
    const v = verified.result?.clinic;
    if (!u || !v || !unverified.result?.user || !verified.result?.user)
      throw new Error('registration failed');
    await verifyEmail(t, verified.result.user.email);
    const before = (await t.gql<ClinicView>(CLINIC, { id: u.id }, admin)).body.data?.clinic;
    expect(before?.status).toBe('READY');
    const fqdn = `${u.subdomain}.${t.config.baseDomain}`;
    expect(rcodeOf((await udpExchange(t.dnsPort, query(fqdn, 'A'))) as Buffer)).toBe(0);
    const { databases, roles } = await withClient(inject('pgAdminUrl'), async (client) => ({
      databases: (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [before?.databaseName]))
        .rowCount,
      roles: (
        await client.query(
          "SELECT 1 FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = $1 AND rolname LIKE $2",
          [`onramp:${t.app.deps.db.deploymentId}`, `%${u.id.replaceAll('-', '').slice(0, 16)}`],
        )
      ).rowCount,
    }));
    expect({ databases, roles }).toEqual({ databases: 1, roles: 1 });

    await expect
      .poll(async () => (await t.gql<ClinicView>(CLINIC, { id: u.id }, admin)).body.data?.clinic, {
        timeout: 30_000,
        interval: 500,
      })
      .toBeNull();

    // The verified clinic is untouched.
    expect((await t.gql<ClinicView>(CLINIC, { id: v.id }, admin)).body.data?.clinic?.status).toBe('READY');
    // Database and role: quarantined (decision 040), not dropped; DNS: gone.
    const after = await withClient(inject('pgAdminUrl'), async (client) => ({
      databases: (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [before?.databaseName]))
        .rowCount,
      roles: (
        await client.query('SELECT 1 FROM pg_roles WHERE rolname LIKE $1 AND rolcanlogin', [
          `%${u.id.replaceAll('-', '').slice(0, 16)}`,
        ])
      ).rowCount,
    }));
    expect(after).toEqual({ databases: 0, roles: 0 });
    expect(
      await t.app.deps.db.prisma.clinicObject.count({
        where: { clinicId: u.id, state: 'QUARANTINED', reason: 'unverified registration expired' },
      }),
    ).toBe(2);
    expect(rcodeOf((await udpExchange(t.dnsPort, query(fqdn, 'A'))) as Buffer)).toBe(3);
    // Recorded: a DELETE run of the registration's undo, and an audit entry.
    const runs = await t.gql<{
      provisioningRuns: { kind: string; status: string; steps: { name: string }[] }[];
    }>(
      'query ($id: ID) { provisioningRuns(clinicId: $id) { kind status steps { name status } } }',
      { id: u.id },
      admin,
    );
    expect(runs.body.data?.provisioningRuns[0]).toMatchObject({
      kind: 'DELETE',
      status: 'SUCCEEDED',
      steps: ['ssl', 'dns', 'create_database', 'central_records'].map((name) => ({
        name,
        status: 'SUCCEEDED',
      })),
    });
    const audit = await t.gql<{ auditLog: { edges: { node: { action: string; clinicId: string } }[] } }>(
      '{ auditLog(first: 50, action: "registration.expired") { edges { node { action clinicId } } } }',
      {},
      admin,
    );
    expect(audit.body.data?.auditLog.edges.map((edge) => edge.node.clinicId)).toContain(u.id);

    // The same e-mail and name register again, and get the same subdomain back.
    const again = await registerClinic(t, {
      clinicName: `Expiring ${suffix}`,
      adminEmail: unverified.result.user.email,
    });
    expect(again.result?.__typename).toBe('RegisterClinicSuccess');
    expect(again.result?.clinic?.subdomain).toBe(u.subdomain);
  });
});
