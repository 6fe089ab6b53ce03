/**
 * The warm pool of verified spares (issue 16, docs/decisions/055): spares are inspected when they
 * are made and closed; a registration claims one by a rename and grants, then checks and seeds it
 * over one session as the clinic role. A spare changed after its inspection is never handed out,
 * parallel claims never share one, and an empty pool means a clone. Registrations go through
 * GraphQL (test/registration-flow.ts), on a server of their own so that no other file's pool
 * makes or claims spares there.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startExtraPostgres, startTestApp } from '../../../test/harness.js';
import { type RegisterAnswer, registerClinic } from '../../../test/registration-flow.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import { clinicDatabaseGrants, clinicRoleSql } from './admin.js';
import { clinicPassword, clinicRoleUrl } from './integrity.js';
import { randomPassword } from './secrets.js';
import { WarmPool } from './warm-pool.js';

const server = await startExtraPostgres();

interface Spare {
  name: string;
  oid: number;
  open: boolean;
  note: string | null;
}

const sql = <T>(query: string, values: unknown[] = []) =>
  withClient(server.url, async (client) => (await client.query(query, values)).rows as T[]);

const spares = () =>
  sql<Spare>(
    `SELECT datname AS name, oid::int AS oid, datallowconn AS open, shobj_description(oid, 'pg_database') AS note
       FROM pg_database WHERE datname LIKE 'onramp\\_spare\\_%' ORDER BY oid`,
  );
const claimable = async () =>
  (await spares()).filter((spare) => !spare.open && spare.note === 'onramp:spare:verified');

/** Sessions the server counted on a database; a backend's stats arrive when it has exited. */
async function sessionsOn(database: string, atLeast: number): Promise<number> {
  let sessions = 0;
  for (let i = 0; i < 50; i++) {
    const [row] = await sql<{ sessions: number }>(
      'SELECT sessions::int FROM pg_stat_database WHERE datname = $1',
      [database],
    );
    sessions = row?.sessions ?? 0;
    if (sessions >= atLeast) break;
    await sleep(50);
  }
  // A moment more: a late session would show here.
  await sleep(300);
  const [row] = await sql<{ sessions: number }>(
    'SELECT sessions::int FROM pg_stat_database WHERE datname = $1',
    [database],
  );
  return row?.sessions ?? sessions;
}

describe('the warm pool of verified spares', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: server.url,
    CLINIC_POOL_SIZE: '3',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db } = t.app.deps;
  const clinicServer = () => {
    const found = [...db.servers.byId.values()].find((candidate) => candidate.url === server.url);
    if (!found) throw new Error('the test server is not among the clinic servers');
    return found;
  };

  /** A registration through GraphQL, READY, with the OID of its database. */
  async function registered(answer: RegisterAnswer) {
    expect(answer.result).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: answer.result?.clinic?.id } });
    const [row] = await sql<{ oid: number }>('SELECT oid::int AS oid FROM pg_database WHERE datname = $1', [
      clinic.databaseName,
    ]);
    return { clinic, oid: row?.oid };
  }

  async function providers(clinic: Parameters<typeof clinicPassword>[0]) {
    const password = clinicPassword(clinic, t.config.encryptionKey) as string;
    const url = clinicRoleUrl(server.url, clinic.databaseName, clinic.databaseRole, password);
    return withClient(url, async (c) => (await c.query('SELECT email FROM healthcare_providers')).rowCount);
  }

  it('makes spares closed from birth, never connected to; a claim gives a READY clinic, connected to once', async () => {
    await provisioning.pool.idle();
    const before = await claimable();
    expect(before).toHaveLength(3);
    // A closed copy of the inspected template (decision 093): no session has ever been there.
    for (const spare of before) expect(await sessionsOn(spare.name, 0)).toBe(0);

    const { clinic, oid } = await registered(await registerClinic(t));
    expect(oid).toBe(before[0]?.oid);
    // The one session of the registration: verify_database's, which seed_provider uses too.
    expect(await sessionsOn(clinic.databaseName, 1)).toBe(1);
    expect(await provisioning.checkClinic(clinic.id)).toMatchObject({ dbStatus: 'HEALTHY' });
    expect(clinic.schemaVersion).toBe(db.clinicServers[0]?.template.version);
    expect(await providers(clinic)).toBe(1);

    await provisioning.pool.idle();
    expect(await claimable()).toHaveLength(3);
  });

  it("stores a clinic role's secret with one SCRAM iteration; only its own password opens it", async () => {
    const { clinic } = await registered(await registerClinic(t));
    const [role] = await sql<{ secret: string }>(
      'SELECT rolpassword AS secret FROM pg_authid WHERE rolname = $1',
      [clinic.databaseRole],
    );
    expect(role?.secret).toMatch(/^SCRAM-SHA-256\$1:/);
    const password = clinicPassword(clinic, t.config.encryptionKey) as string;
    const url = (secret: string) =>
      clinicRoleUrl(server.url, clinic.databaseName, clinic.databaseRole, secret);
    expect(await withClient(url(password), async (c) => (await c.query('SELECT 1')).rowCount)).toBe(1);
    await expect(withClient(url(`${password}x`), async () => {})).rejects.toThrow(
      /password authentication failed/,
    );
  });

  it('never hands out a spare changed since it was made, and keeps it', async () => {
    await provisioning.pool.idle();
    const [resealed, reopened] = await claimable();
    if (!resealed || !reopened) throw new Error('expected two spares');
    const breakSpare = async (spare: Spare) => {
      await sql(`ALTER DATABASE ${quoteIdent(spare.name)} ALLOW_CONNECTIONS true`);
      await withClient(databaseUrl(server.url, spare.name), (c) => c.query('DROP TABLE "settings"'));
    };
    await breakSpare(resealed);
    // Closed again, as if nothing had happened: the claim takes it and the check after it sees.
    await sql(`ALTER DATABASE ${quoteIdent(resealed.name)} ALLOW_CONNECTIONS false`);
    await breakSpare(reopened);

    const first = await registered(await registerClinic(t));
    const second = await registered(await registerClinic(t));
    const given = [first.oid, second.oid];
    expect(given).not.toContain(resealed.oid);
    expect(given).not.toContain(reopened.oid);
    for (const { clinic } of [first, second]) {
      expect(await provisioning.checkClinic(clinic.id)).toMatchObject({ dbStatus: 'HEALTHY' });
      expect(await providers(clinic)).toBe(1);
    }

    await provisioning.pool.idle();
    const after = await spares();
    // Both kept, neither claimable: the rejected one says why, the reopened one stays open.
    expect(after.find((spare) => spare.oid === resealed.oid)).toMatchObject({
      note: expect.stringContaining('onramp:spare:rejected: missing tables: settings'),
    });
    expect(after.find((spare) => spare.oid === reopened.oid)).toMatchObject({
      open: true,
      note: 'onramp:spare:verified',
    });
    expect(t.logs()).toContain('claimed warm spare failed its check');
    expect(t.logs()).toContain('warm spares reopened since they were made');
    expect(await claimable()).toHaveLength(3);
  });

  it('gives each of a parallel burst its own database', async () => {
    await provisioning.pool.idle();
    const offered = new Set((await claimable()).map((spare) => spare.oid));
    const answers = await Promise.all(Array.from({ length: 6 }, () => registerClinic(t)));
    const clinics = await Promise.all(answers.map(registered));
    const oids = clinics.map((clinic) => clinic.oid);
    expect(new Set(oids).size).toBe(6);
    expect(oids.filter((oid) => oid !== undefined && offered.has(oid)).length).toBeGreaterThanOrEqual(1);
    for (const { clinic } of clinics) {
      expect(await provisioning.checkClinic(clinic.id)).toMatchObject({ dbStatus: 'HEALTHY' });
      expect(await providers(clinic)).toBe(1);
    }
    await provisioning.pool.idle();
  });

  it('clones when no spare is claimable, then refills', async () => {
    await provisioning.pool.idle();
    for (const spare of await claimable())
      await sql(`ALTER DATABASE ${quoteIdent(spare.name)} ALLOW_CONNECTIONS true`);
    const known = new Set((await spares()).map((spare) => spare.oid));

    const { clinic, oid } = await registered(await registerClinic(t));
    expect(known.has(oid as number)).toBe(false);
    // A clone is connected to once: verify_database and seed_provider share the session.
    expect(await sessionsOn(clinic.databaseName, 1)).toBe(1);
    expect(await provisioning.checkClinic(clinic.id)).toMatchObject({ dbStatus: 'HEALTHY' });
    expect(await providers(clinic)).toBe(1);

    await provisioning.pool.idle();
    expect(await claimable()).toHaveLength(3);
  });

  it('makes no more spares than its size when several instances refill one server at once', async () => {
    await provisioning.pool.idle();
    for (const spare of await claimable())
      await sql(`ALTER DATABASE ${quoteIdent(spare.name)} ALLOW_CONNECTIONS true`);
    const before = new Set((await spares()).map((spare) => spare.oid));
    // Three instances' pools, as a cluster has: each would count the spares and clone the rest.
    const pools = [1, 2, 3].map(() => new WarmPool(3, t.app.deps.logger));
    await Promise.all(pools.map((pool) => pool.refill(clinicServer())));

    const made = (await spares()).filter((spare) => !before.has(spare.oid));
    expect(made).toHaveLength(3);
    expect(await claimable()).toHaveLength(3);
  });

  it('finishes a refill stopped between a clone and its mark: a closed spare is marked, an open one goes', async () => {
    await provisioning.pool.idle();
    const { template } = clinicServer();
    const prefix = `onramp_spare_${template.version.replaceAll('-', '_')}_`;
    await sql(
      `CREATE DATABASE ${quoteIdent(`${prefix}bornclosed`)} TEMPLATE ${quoteIdent(template.name)} ALLOW_CONNECTIONS false`,
    );
    await sql(`CREATE DATABASE ${quoteIdent(`${prefix}bornopen`)} TEMPLATE ${quoteIdent(template.name)}`);

    await provisioning.pool.refill(clinicServer());
    const after = await spares();
    expect(after.find((spare) => spare.name === `${prefix}bornclosed`)).toMatchObject({
      open: false,
      note: 'onramp:spare:verified',
    });
    expect(after.find((spare) => spare.name === `${prefix}bornopen`)).toBeUndefined();
    expect(await sessionsOn(`${prefix}bornclosed`, 0)).toBe(0);
  });

  it('makes no spare while the template is open to connections, and says so', async () => {
    await provisioning.pool.idle();
    const { template } = clinicServer();
    for (const spare of await claimable())
      await sql(`ALTER DATABASE ${quoteIdent(spare.name)} ALLOW_CONNECTIONS true`);
    const before = new Set((await spares()).map((spare) => spare.oid));
    await sql(`ALTER DATABASE ${quoteIdent(template.name)} ALLOW_CONNECTIONS true`);
    try {
      await provisioning.pool.refill(clinicServer());
      expect((await spares()).filter((spare) => !before.has(spare.oid))).toEqual([]);
      expect(t.logs()).toContain('clinic template is not closed to connections');
    } finally {
      await sql(`ALTER DATABASE ${quoteIdent(template.name)} ALLOW_CONNECTIONS false`);
    }
    await provisioning.pool.refill(clinicServer());
    expect(await claimable()).toHaveLength(3);
  });

  it('claims in one message: a claim whose grants fail leaves the spare as it was', async () => {
    await provisioning.pool.idle();
    const [first] = await claimable();
    if (!first) throw new Error('expected a spare');
    const target = `clinic_claim_${Date.now()}`;
    const grants = `GRANT CONNECT ON DATABASE ${quoteIdent(target)} TO "onramp_no_such_role"`;
    await expect(
      withClient(server.url, (admin) => provisioning.pool.claim(admin, clinicServer(), target, grants)),
    ).rejects.toThrow(/does not exist/);
    // Neither renamed nor reopened: the rename and the grants are one transaction.
    expect((await claimable())[0]).toEqual(first);
    expect(await sql('SELECT 1 FROM pg_database WHERE datname = $1', [target])).toEqual([]);
  });

  it('claims a spare it knows by name in one message, the role included; a role that exists rolls it all back', async () => {
    await provisioning.pool.idle();
    const offered = await claimable();
    const stamp = Date.now();
    const target = `clinic_one_message_${stamp}`;
    const role = `clinic_one_message_${stamp}_rw`;
    const sent: string[] = [];
    const claimed = await withClient(server.url, (admin) =>
      provisioning.pool.claim(
        {
          query: ((text: string, values?: unknown[]) => {
            sent.push(text);
            return admin.query(text, values);
          }) as typeof admin.query,
        },
        clinicServer(),
        target,
        clinicDatabaseGrants('test', target, role),
        clinicRoleSql(role, randomPassword()),
      ),
    );
    expect(claimed).toBe(true);
    // The refill saw the spares: no lookup, one message (docs/decisions/072).
    expect(sent).toHaveLength(1);
    const [database] = await sql<{ oid: number; open: boolean; note: string }>(
      `SELECT oid::int AS oid, datallowconn AS open, shobj_description(oid, 'pg_database') AS note
         FROM pg_database WHERE datname = $1`,
      [target],
    );
    expect(offered.map((spare) => spare.oid)).toContain(database?.oid);
    expect(database).toMatchObject({ open: true, note: 'onramp:test' });
    expect(await sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [role])).toHaveLength(1);

    // The same role again (a retry): the claim fails whole, its spare stays as it was.
    await provisioning.pool.idle();
    const [next] = await claimable();
    const again = `clinic_one_message_${stamp}_2`;
    await expect(
      withClient(server.url, (admin) =>
        provisioning.pool.claim(
          admin,
          clinicServer(),
          again,
          clinicDatabaseGrants('test', again, role),
          clinicRoleSql(role, randomPassword()),
        ),
      ),
    ).rejects.toMatchObject({ code: '42710' });
    expect((await claimable())[0]).toEqual(next);
    expect(await sql('SELECT 1 FROM pg_database WHERE datname = $1', [again])).toEqual([]);

    // A target that exists already (an earlier try's): the new role goes back with the rename.
    const fresh = `clinic_one_message_${stamp}_rw2`;
    await expect(
      withClient(server.url, (admin) =>
        provisioning.pool.claim(
          admin,
          clinicServer(),
          target,
          clinicDatabaseGrants('test', target, fresh),
          clinicRoleSql(fresh, randomPassword()),
        ),
      ),
    ).rejects.toMatchObject({ code: '42P04' });
    expect((await claimable())[0]).toEqual(next);
    expect(await sql('SELECT 1 FROM pg_roles WHERE rolname = $1', [fresh])).toEqual([]);
  });

  // Last: it leaves a run "dead" in this process, as a crash would.
  it('connects as the clinic role while create_database ends; a crash right after it is rolled back', async () => {
    await provisioning.pool.idle();
    provisioning.faults.injectCrash('create_database', 'after');
    const registering = registerClinic(t);
    registering.catch(() => {});
    await expect
      .poll(() => provisioning.faults.crashPending('create_database'), { timeout: 20_000 })
      .toBe(false);
    const run = await db.prisma.provisioningRun.findFirstOrThrow({
      where: { kind: 'REGISTER', status: 'RUNNING' },
      orderBy: { startedAt: 'desc' },
      select: { id: true, clinicId: true },
    });
    const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: run.clinicId as string } });
    const session = () =>
      sql<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND usename = $2', [
        clinic.databaseName,
        clinic.databaseRole,
      ]);
    // verify_database's session, made before that step starts (docs/decisions/067).
    await expect.poll(async () => (await session()).length, { timeout: 5_000 }).toBe(1);

    // The process "dies": its connections go with it, and the takeover undoes the run.
    await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [
      clinic.databaseName,
    ]);
    await db.prisma.provisioningRun.update({ where: { id: run.id }, data: { leaseUntil: new Date(0) } });
    await t.app.deps.reconciler.reconcile();
    expect(
      await db.prisma.provisioningRun.findUniqueOrThrow({ where: { id: run.id }, select: { status: true } }),
    ).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await sql('SELECT 1 FROM pg_database WHERE datname = $1', [clinic.databaseName])).toEqual([]);
  }, 60_000);
});
