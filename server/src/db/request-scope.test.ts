/**
 * Row-level security of the central database: a request's transaction only sees its clinic,
 * whatever SQL it runs (migration 20261123000000_row_level_security, decision 011).
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../test/harness.js';
import { createClinic } from '../../test/registration-flow.js';
import {
  createRequestPrisma,
  type RequestScope,
  requestPool,
  requestRoleName,
  requestRolePassword,
  scopedRunner,
  uuidSql,
} from './request-scope.js';

describe('row-level security on clinic-scoped central tables', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma, requestPrisma } = t.app.deps.db;
  const provision = (clinicName: string) => createClinic(t, { clinicName, country: 'FR' });
  const { clinicId: a, admin: adminOfA } = await provision('Isolation A');
  const { clinicId: b } = await provision('Isolation B');
  for (const [clinicId, letter] of [
    [a, 'a'],
    [b, 'b'],
  ] as const) {
    await prisma.clientRecord.create({
      data: {
        clinicId,
        kind: 'PERSON',
        email: `client-${letter}@example.com`,
        firstName: 'C',
        lastName: letter,
      },
    });
    await prisma.auditLog.create({ data: { action: 'test.entry', clinicId } });
  }
  const scopeOfA: RequestScope = { userId: adminOfA.id, role: 'CLINIC_ADMIN', clinicId: a };
  const inA = scopedRunner(requestPrisma, scopeOfA);

  it('connects as a role that owns nothing and cannot bypass row-level security', async () => {
    const [role] = await requestPrisma.$queryRaw<
      { rolsuper: boolean; rolbypassrls: boolean; owns: bigint }[]
    >`
      SELECT r.rolsuper, r.rolbypassrls,
             (SELECT count(*) FROM pg_tables WHERE tableowner = current_user) AS owns
        FROM pg_roles r WHERE r.rolname = current_user`;
    expect(role).toEqual({ rolsuper: false, rolbypassrls: false, owns: 0n });
  });

  it('forces row-level security on every table with a clinic_id and on every table requests may touch', async () => {
    // Read from the migrated central schema, so that a new table cannot be forgotten.
    const tables = await prisma.$queryRaw<
      { name: string; clinicScoped: boolean; requestsMayUse: boolean; forced: boolean; policies: number }[]
    >`
      SELECT c.relname AS name,
             EXISTS (SELECT 1 FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attname = 'clinic_id' AND NOT a.attisdropped) AS "clinicScoped",
             has_table_privilege('onramp_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE') AS "requestsMayUse",
             c.relrowsecurity AND c.relforcerowsecurity AS forced,
             (SELECT count(*)::int FROM pg_policy p WHERE p.polrelid = c.oid) AS policies
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
       ORDER BY c.relname`;
    /**
     * Tables with a clinic_id that may go without: none today. An entry needs a comment saying
     * why no request can ever read another clinic's rows through it.
     */
    const EXCEPTIONS: string[] = [];
    const mustBeForced = tables.filter(
      (table) => (table.clinicScoped || table.requestsMayUse) && !EXCEPTIONS.includes(table.name),
    );
    expect(mustBeForced.map((table) => table.name)).toEqual(
      expect.arrayContaining([
        'audit_log',
        'client_records',
        'clinics',
        'companies',
        'provisioning_runs',
        'provisioning_steps',
        'subdomain_reservations',
        'users',
      ]),
    );
    expect(mustBeForced.filter((table) => !table.forced || table.policies === 0)).toEqual([]);
    // And the request role can touch nothing that is not forced (sessions, codes, keys…).
    expect(tables.filter((table) => table.requestsMayUse && !table.forced)).toEqual([]);
  });

  it('a hand-written query without any WHERE in a clinic A request sees only clinic A', async () => {
    const rows = await inA(
      (tx) =>
        tx.$queryRaw<{ table: string; clinic_id: string }[]>`
        SELECT 'client_records' AS table, clinic_id::text FROM client_records
        UNION ALL SELECT 'audit_log', clinic_id::text FROM audit_log
        UNION ALL SELECT 'clinics', id::text FROM clinics
        UNION ALL SELECT 'users', clinic_id::text FROM users
        UNION ALL SELECT 'provisioning_runs', clinic_id::text FROM provisioning_runs
        UNION ALL SELECT 'provisioning_steps', r.clinic_id::text
          FROM provisioning_steps s JOIN provisioning_runs r ON r.id = s.run_id`,
    );
    const tables = new Set(rows.map((row) => row.table));
    expect(tables).toEqual(
      new Set(['client_records', 'audit_log', 'clinics', 'users', 'provisioning_runs', 'provisioning_steps']),
    );
    expect(rows.every((row) => row.clinic_id === a)).toBe(true);
    // The owner's connection still sees both clinics.
    expect(await prisma.clientRecord.count({ where: { clinicId: { in: [a, b] } } })).toBe(2);
  });

  it("cannot update, delete or insert clinic B's rows from a clinic A request", async () => {
    const touched = await inA(async (tx) => ({
      updated: await tx.$executeRaw`UPDATE client_records SET first_name = 'Mallory'`,
      deleted: await tx.$executeRaw`DELETE FROM audit_log WHERE clinic_id = ${b}::uuid`,
    }));
    expect(touched).toEqual({ updated: 1, deleted: 0 });
    expect((await prisma.clientRecord.findFirstOrThrow({ where: { clinicId: b } })).firstName).toBe('C');
    await expect(
      inA((tx) =>
        tx.clientRecord.create({ data: { clinicId: b, kind: 'PERSON', email: 'planted@example.com' } }),
      ),
    ).rejects.toThrow(/row-level security/);
    expect(await prisma.clientRecord.count({ where: { email: 'planted@example.com' } })).toBe(0);
  });

  it('has no privilege at all on tables that are not clinic-scoped (sessions, codes)', async () => {
    await expect(inA((tx) => tx.$queryRaw`SELECT * FROM sessions`)).rejects.toThrow(/permission denied/);
    await expect(inA((tx) => tx.$queryRaw`SELECT * FROM login_codes`)).rejects.toThrow(/permission denied/);
  });

  it('sees nothing without a scope, everything as super-admin, and the scope ends with the transaction', async () => {
    const count = (scope: RequestScope) =>
      scopedRunner(
        requestPrisma,
        scope,
      )((tx) => tx.clientRecord.count({ where: { clinicId: { in: [a, b] } } }));
    expect(await count({ userId: null, role: null, clinicId: null })).toBe(0);
    expect(await count({ userId: null, role: 'SUPER_ADMIN', clinicId: null })).toBe(2);
    expect(await count(scopeOfA)).toBe(1);
    // Outside any scoped transaction the request connection carries no clinic.
    expect(await requestPrisma.clientRecord.count()).toBe(0);
  });

  it('through GraphQL, a clinic admin reads only their clinic and cannot ask for another', async () => {
    const session = await t.app.deps.auth.startSession(adminOfA.id, { ip: null }, 'test');
    const headers = { authorization: `Bearer ${session.accessToken}` };
    const log = await t.gql<{ auditLog: { edges: { node: { clinicId: string } }[] } }>(
      '{ auditLog(first: 50) { edges { node { clinicId } } } }',
      {},
      headers,
    );
    expect(log.body.data?.auditLog.edges.length).toBeGreaterThan(0);
    expect(log.body.data?.auditLog.edges.every((edge) => edge.node.clinicId === a)).toBe(true);
    const own = await t.gql<{ clinic: { id: string } }>(`{ clinic(id: "${a}") { id } }`, {}, headers);
    expect(own.body.data?.clinic.id).toBe(a);
    const other = await t.gql(`{ clinic(id: "${b}") { id } }`, {}, headers);
    expect(other.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  /** A request client of its own whose pool records every statement it sends. */
  const countedRequestPrisma = () => {
    const { centralUrl } = t.app.deps.db;
    const database = decodeURIComponent(new URL(centralUrl).pathname.slice(1));
    const pool = requestPool(
      centralUrl,
      requestRoleName(database),
      requestRolePassword(t.app.deps.config.encryptionKey, database),
    );
    const sent: string[] = [];
    // Registered before createRequestPrisma's own listener: sees what reaches the server.
    pool.on('connect', (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      client.query = ((config: unknown, ...rest: unknown[]) => {
        sent.push(typeof config === 'string' ? config : (config as pg.QueryConfig).text);
        return query(config, ...rest);
      }) as typeof client.query;
    });
    return { counted: createRequestPrisma(pool), sent };
  };

  it('sets the scope in the statement that begins the transaction: one round trip, not two', async () => {
    const { counted, sent } = countedRequestPrisma();
    try {
      const seen = await scopedRunner(counted, scopeOfA)((tx) => tx.clientRecord.findMany());
      expect(seen.map((row) => row.clinicId)).toEqual([a]);
      expect(sent).toHaveLength(3);
      expect(sent[0]).toMatch(/^BEGIN; SELECT set_config\('onramp.clinic_id'/);
      expect(sent[2]).toBe('COMMIT');
      // Outside a scoped run a transaction begins with nothing set, and sees nothing.
      sent.length = 0;
      expect(await counted.$transaction((tx) => tx.clientRecord.count())).toBe(0);
      expect(sent[0]).toBe('BEGIN');
    } finally {
      await counted.$disconnect();
    }
  });

  it('reads under the scope in one round trip, whose settings end with it', async () => {
    const { counted, sent } = countedRequestPrisma();
    try {
      const read = scopedRunner(counted, scopeOfA).read<{ clinicId: string }>(
        uuidSql`SELECT clinic_id AS "clinicId" FROM client_records WHERE clinic_id IN (${a}, ${b})`,
      );
      expect((await read).map((row) => row.clinicId)).toEqual([a]);
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatch(/^SELECT set_config\('onramp.clinic_id'/);
      // The same connection afterwards: the implicit transaction ended, and its settings with it.
      const [after] = await counted.$queryRaw<{ clinic: string | null }[]>`
        SELECT current_setting('onramp.clinic_id', true) AS clinic`;
      expect(after?.clinic ?? '').toBe('');
      expect(await counted.clientRecord.count()).toBe(0);
    } finally {
      await counted.$disconnect();
    }
    expect(() => uuidSql`SELECT 1 WHERE ${`${a}'; SET ROLE postgres; --`} IS NOT NULL`).toThrow(/not a uuid/);
  });

  it('refuses a scope whose values are not a uuid and a role name, before sending anything', async () => {
    const forged = scopedRunner(requestPrisma, {
      userId: null,
      role: null,
      clinicId: `${a}'; SET ROLE postgres; --`,
    });
    await expect(forged((tx) => tx.clientRecord.count())).rejects.toThrow(/not a valid request scope/);
    const badRole = scopedRunner(requestPrisma, {
      userId: null,
      role: "SUPER_ADMIN'" as RequestScope['role'],
      clinicId: null,
    });
    await expect(badRole((tx) => tx.clientRecord.count())).rejects.toThrow(/not a valid request scope/);
  });

  it('makes the scoped Prisma client only when something asks for it', () => {
    const runner = scopedRunner(requestPrisma, scopeOfA);
    const descriptor = Object.getOwnPropertyDescriptor(runner, 'client');
    expect(descriptor?.get).toBeTypeOf('function');
    expect(runner.client).toBe(runner.client);
  });
});
