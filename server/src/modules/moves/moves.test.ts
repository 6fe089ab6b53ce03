/**
 * moveClinic on two real PostgreSQL servers (wal_level = logical): a clinic's database moves by
 * logical replication while a writer keeps writing as the clinic role; a fault mid-move leaves the
 * clinic where it was, writable; bad requests get typed errors.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { afterFile, startExtraPostgres, startTestApp, type TestApp } from '../../../test/harness.js';
import { clinicWithAdmin, signIn } from '../../../test/registration-flow.js';
import { serverAddress } from '../../db/servers.js';
import { withClient } from '../../db/sql.js';
import { clinicPassword, clinicRoleUrl } from '../provisioning/integrity.js';
import { MOVE_STEP_NAMES } from './step-names.js';
import { MoveSessions, type MoveState, movePlan } from './steps.js';

const admin = inject('pgAdminUrl');
const other = await startExtraPostgres();

const MOVE = `mutation Move($clinicId: ID!, $server: String!) {
  moveClinic(clinicId: $clinicId, server: $server) {
    __typename
    ... on MoveClinicSuccess {
      runId downtimeMs from to
      rowsVerified { table rows }
      clinic { id databaseServer status }
    }
    ... on ProvisioningFailedError { step runId }
    ... on Error { code message }
  }
}`;

interface MoveAnswer {
  __typename: string;
  runId?: string;
  downtimeMs?: number;
  from?: string;
  to?: string;
  rowsVerified?: { table: string; rows: number }[];
  clinic?: { id: string; databaseServer: string; status: string };
  step?: string;
  code?: string;
  message?: string;
}

describe('moveClinic', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: `${admin},${other.url}`,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { db } = t.app.deps;
  const source = serverAddress(admin);
  const target = serverAddress(other.url);

  const move = async (clinicId: string, server: string) => {
    const { body } = await t.gql<{ moveClinic: MoveAnswer }>(
      MOVE,
      { clinicId, server },
      await t.superAdmin(),
    );
    if (!body.data) throw new Error(`moveClinic: ${JSON.stringify(body.errors)}`);
    return body.data.moveClinic;
  };

  it('moves a clinic online: data written before and during the move are there after, users sign in, the source is quarantined', async () => {
    const { clinic, user } = await clinicWithAdmin(t);
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    expect(t.app.deps.provisioning.serverName(row.databaseServerId)).toBe(source);
    const before = await withClient(roleUrl(t, row.databaseServerId, row), async (c) => {
      await c.query(
        "INSERT INTO patients (first_name, last_name) SELECT 'Before', 'P' || i FROM generate_series(1, 500) i",
      );
      return (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM patients')).rows[0]?.n;
    });
    expect(before).toBe(500);

    const writer = startWriter(t, clinic.id);
    await writer.written(5); // writing on the source before the move starts
    const atStart = writer.count();
    const answer = await move(clinic.id, target);
    // After the switch the writer's retries reach the target: wait until it has written there.
    await writer.writtenOn(target, 5);
    const acknowledged = await writer.stop();

    expect(answer).toMatchObject({
      __typename: 'MoveClinicSuccess',
      from: source,
      to: target,
      clinic: { id: clinic.id, databaseServer: target, status: 'READY' },
    });
    expect(answer.downtimeMs).toBeGreaterThanOrEqual(0);
    expect(answer.rowsVerified?.find((entry) => entry.table === 'patients')?.rows).toBeGreaterThanOrEqual(
      500,
    );
    // The freeze refused the writer (its session ended, its logins refused) until the switch.
    expect(writer.refusals()).toBeGreaterThan(0);
    // It kept writing on the source while the move copied and caught up, until the freeze.
    expect(acknowledged.slice(atStart).filter((write) => write.server === source).length).toBeGreaterThan(0);

    const moved = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    const onTarget = await withClient(roleUrl(t, moved.databaseServerId, moved), async (c) => ({
      before: (
        await c.query<{ n: number }>("SELECT count(*)::int AS n FROM patients WHERE first_name = 'Before'")
      ).rows[0]?.n,
      written: new Set(
        (
          await c.query<{ last_name: string }>("SELECT last_name FROM patients WHERE first_name = 'Writer'")
        ).rows.map((r) => r.last_name),
      ),
    }));
    expect(onTarget.before).toBe(500);
    const lost = acknowledged.filter((write) => !onTarget.written.has(write.marker));
    expect(lost).toEqual([]);

    // Its users still sign in, and its database is healthy where it is now.
    await signIn(t, user.email);
    expect((await t.app.deps.provisioning.checkClinic(clinic.id)).dbStatus).toBe('HEALTHY');

    // The source copy is quarantined, not dropped; nothing of the replication is left.
    const ledger = await db.prisma.clinicObject.findMany({ where: { clinicId: clinic.id } });
    const on = (name: string) => ledger.filter((entry) => db.servers.names.get(entry.serverId) === name);
    expect(on(source).map((entry) => entry.state)).toEqual(['QUARANTINED', 'QUARANTINED']);
    expect(on(target).map((entry) => entry.state)).toEqual(['COMMITTED', 'COMMITTED']);
    const trash = on(source).find((entry) => entry.kind === 'DATABASE')?.trashName as string;
    await withClient(admin, async (c) => {
      expect(
        (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [row.databaseName])).rowCount,
      ).toBe(0);
      expect((await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [trash])).rowCount).toBe(1);
      expect(await replicationLeftovers(c, 'source')).toEqual([]);
    });
    await withClient(other.url, async (c) => expect(await replicationLeftovers(c, 'target')).toEqual([]));

    // The run is recorded with its steps; its switch tells the downtime.
    const run = await db.prisma.provisioningRun.findUniqueOrThrow({
      where: { id: answer.runId as string },
      include: { steps: true },
    });
    expect(run).toMatchObject({ kind: 'MOVE', status: 'SUCCEEDED', clinicId: clinic.id });
    const steps = [...run.steps].sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime());
    expect(steps.map((step) => step.name)).toEqual([...MOVE_STEP_NAMES]);
    // No sequence in the clinic schema yet: that step has nothing to do.
    expect(steps.filter((step) => step.status !== 'SUCCEEDED').map((step) => step.name)).toEqual([
      'move_sequences',
    ]);
    const record = await db.prisma.clinicMove.findFirstOrThrow({ where: { runId: run.id } });
    expect(record).toMatchObject({ status: 'SUCCEEDED', downtimeMs: answer.downtimeMs });
    const audit = await db.prisma.auditLog.findFirst({
      where: { clinicId: clinic.id, action: 'clinic.move' },
    });
    expect(audit?.actorId).not.toBeNull();
  }, 120_000);

  it('rolls back a move that fails mid-way: the clinic stays on its server, writable, nothing left on the target', async () => {
    const { clinic } = await clinicWithAdmin(t);
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    const from = t.app.deps.provisioning.serverName(row.databaseServerId);
    const to = from === source ? target : source;
    const { body } = await t.gql(
      'mutation { injectFault(step: move_verify) { pending } }',
      {},
      await t.superAdmin(),
    );
    expect(body.errors).toBeUndefined();

    const answer = await move(clinic.id, to);
    expect(answer).toMatchObject({ __typename: 'ProvisioningFailedError', step: 'move_verify' });

    const after = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    expect(after.databaseServerId).toBe(row.databaseServerId);
    // Unfrozen: its role logs in and writes on the source again.
    await withClient(roleUrl(t, after.databaseServerId, after), (c) =>
      c.query("INSERT INTO patients (first_name, last_name) VALUES ('After', 'rollback')"),
    );
    const targetUrl = to === target ? other.url : admin;
    await withClient(targetUrl, async (c) => {
      expect(
        (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [row.databaseName])).rowCount,
      ).toBe(0);
      expect((await c.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [row.databaseRole])).rowCount).toBe(
        0,
      );
    });
    for (const url of [admin, other.url])
      await withClient(url, async (c) => {
        expect(await replicationLeftovers(c, 'source')).toEqual([]);
        expect(await replicationLeftovers(c, 'target')).toEqual([]);
      });
    await withClient(roleUrl(t, after.databaseServerId, after), async (c) =>
      expect((await c.query('SELECT pubname FROM pg_publication')).rows).toEqual([]),
    );
    const run = await db.prisma.provisioningRun.findUniqueOrThrow({ where: { id: answer.runId as string } });
    expect(run.status).toBe('ROLLED_BACK');
    expect(await db.prisma.clinicMove.findFirst({ where: { runId: run.id } })).toMatchObject({
      status: 'ROLLED_BACK',
    });
    const entries = await db.prisma.clinicObject.findMany({ where: { clinicId: clinic.id } });
    expect(entries.filter((entry) => entry.state === 'COMMITTED').map((entry) => entry.serverId)).toEqual([
      row.databaseServerId,
      row.databaseServerId,
    ]);
  }, 120_000);

  it('undoes a move its process abandoned mid-way (a crash during the freeze): the clinic is writable on its server again', async () => {
    const { clinic } = await clinicWithAdmin(t);
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    const from = db.servers.byId.get(row.databaseServerId);
    const to = [...db.servers.byId.values()].find((server) => server.id !== row.databaseServerId);
    if (!from || !to) throw new Error('two servers expected');
    // A process ran the move up to the freeze, then died: its run's lease has expired.
    const run = await db.prisma.provisioningRun.create({
      data: { clinicId: clinic.id, kind: 'MOVE', leaseUntil: new Date(Date.now() - 1000) },
    });
    const claim = await db.prisma.clinicMove.create({
      data: { clinicId: clinic.id, runId: run.id, fromServerId: from.id, toServerId: to.id },
    });
    const { provisioning } = t.app.deps;
    const state: MoveState = {
      clinicId: clinic.id,
      clinicName: clinic.name,
      moveId: claim.id,
      source: from,
      target: to,
      databaseName: row.databaseName,
      roleName: row.databaseRole,
      password: clinicPassword(row, t.config.encryptionKey) as string,
      sessions: new MoveSessions(from, to, row.databaseName),
    };
    const { steps } = movePlan({
      prisma: db.prisma,
      ledger: provisioning.ledger,
      pool: provisioning.pool,
      clients: provisioning.clients,
      deploymentId: provisioning.deploymentId,
      logger: t.app.deps.logger,
      sourceRetentionSeconds: 60,
    });
    // By hand, outside a runner: no step record is written (move steps write none themselves).
    for (const step of steps.slice(0, steps.findIndex((s) => s.name === 'move_freeze') + 1))
      await step.run(state, { runId: run.id, record: async () => {} });
    await state.sessions.close();
    await expect(withClient(roleUrl(t, from.id, row), (c) => c.query('SELECT 1'))).rejects.toThrow();
    await db.prisma.provisioningRun.update({ where: { id: run.id }, data: { status: 'FAILED' } });

    expect(await t.app.deps.moves.recoverAbandoned()).toBe(1);

    await withClient(roleUrl(t, from.id, row), (c) =>
      c.query("INSERT INTO patients (first_name, last_name) VALUES ('After', 'recovery')"),
    );
    expect((await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } })).databaseServerId).toBe(
      from.id,
    );
    await withClient(to.url, async (c) => {
      expect(
        (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [row.databaseName])).rowCount,
      ).toBe(0);
      expect(await replicationLeftovers(c, 'target')).toEqual([]);
    });
    await withClient(from.url, async (c) => expect(await replicationLeftovers(c, 'source')).toEqual([]));
    await withClient(roleUrl(t, from.id, row), async (c) =>
      expect((await c.query('SELECT pubname FROM pg_publication')).rows).toEqual([]),
    );
    expect(await db.prisma.clinicMove.findUniqueOrThrow({ where: { id: claim.id } })).toMatchObject({
      status: 'ROLLED_BACK',
    });
    expect(await t.app.deps.moves.recoverAbandoned()).toBe(0);
  }, 120_000);

  it('answers typed errors and changes nothing', async () => {
    const { clinic, headers } = await clinicWithAdmin(t);
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    const here = t.app.deps.provisioning.serverName(row.databaseServerId);
    const there = here === source ? target : source;

    expect(await move(randomUUID(), there)).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
    expect(await move(clinic.id, 'no-such-server:5432')).toMatchObject({ code: 'NOT_FOUND' });
    expect(await move(clinic.id, here)).toMatchObject({ code: 'CONFLICT' });
    // A recorded server that no configured URL reaches.
    const gone = await db.prisma.databaseServer.create({
      data: { name: 'gone.internal:5432', address: 'gone.internal:5432', url: 'postgres://gone.internal/x' },
    });
    expect(await move(clinic.id, gone.name)).toMatchObject({ code: 'CONFLICT' });
    expect((await move(clinic.id, gone.id)).message).toMatch(/unreachable/);
    // A move already under way.
    const running = await db.prisma.provisioningRun.create({
      data: { clinicId: clinic.id, kind: 'MOVE', leaseUntil: new Date(Date.now() + 600_000) },
    });
    const claim = await db.prisma.clinicMove.create({
      data: {
        clinicId: clinic.id,
        runId: running.id,
        fromServerId: row.databaseServerId,
        toServerId: gone.id,
      },
    });
    expect(await move(clinic.id, there)).toMatchObject({ code: 'CONFLICT' });
    // Nor may a repair (the one at sign-in included: it would reset the frozen role's password)
    // or a deletion run while the clinic moves.
    await expect(t.app.deps.provisioning.repairClinic(clinic.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    await expect(t.app.deps.provisioning.deleteClinic(clinic.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    await db.prisma.clinicMove.update({ where: { id: claim.id }, data: { status: 'FAILED' } });
    await db.prisma.provisioningRun.update({ where: { id: running.id }, data: { status: 'FAILED' } });

    // Control characters are refused before anything runs; a clinic admin may not move clinics.
    const bad = await t.gql(MOVE, { clinicId: clinic.id, server: `${there}\u0000` }, await t.superAdmin());
    expect(JSON.stringify(bad.body)).toMatch(/VALIDATION_FAILED/);
    const forbidden = await t.gql(MOVE, { clinicId: clinic.id, server: there }, headers);
    expect(forbidden.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');

    // A clinic that is not READY.
    await t.app.deps.provisioning.deleteClinic(clinic.id);
    expect(await move(clinic.id, there)).toMatchObject({ code: 'CONFLICT' });

    const runs = await db.prisma.provisioningRun.count({ where: { clinicId: clinic.id, kind: 'MOVE' } });
    expect(runs).toBe(1); // only the one this test recorded by hand
  }, 60_000);
});

/** The clinic role's URL on the server the central record names. */
function roleUrl(
  t: TestApp,
  serverId: string,
  clinic: {
    id: string;
    databaseName: string;
    databaseRole: string;
    databasePasswordEnc: string | null;
  } & Record<string, unknown>,
): string {
  const server = t.app.deps.db.servers.byId.get(serverId);
  if (!server) throw new Error('server not reachable');
  const password = clinicPassword(clinic as never, t.config.encryptionKey);
  if (!password) throw new Error('no clinic password');
  return clinicRoleUrl(server.url, clinic.databaseName, clinic.databaseRole, password);
}

/** Move replication objects still on a server: slots and subscriptions named onramp_move_…. */
async function replicationLeftovers(c: pg.Client, side: 'source' | 'target'): Promise<string[]> {
  const sql =
    side === 'source'
      ? "SELECT slot_name AS name FROM pg_replication_slots WHERE slot_name LIKE 'onramp\\_move\\_%'"
      : "SELECT subname AS name FROM pg_subscription WHERE subname LIKE 'onramp\\_move\\_%'";
  return (await c.query<{ name: string }>(sql)).rows.map((r) => r.name);
}

interface Write {
  marker: string;
  server: string;
}

/**
 * A clinic's own application, writing as the clinic role one row at a time on the server its
 * central record names (read again after every failure), retrying whatever is refused.
 */
function startWriter(t: TestApp, clinicId: string) {
  const acknowledged: Write[] = [];
  let refused = 0;
  let stopping = false;
  const waiters: (() => void)[] = [];
  const notify = () => {
    for (const wake of waiters.splice(0)) wake();
  };
  const until = async (done: () => boolean) => {
    while (!done()) await new Promise<void>((wake) => waiters.push(wake));
  };
  const loop = (async () => {
    let n = 0;
    while (!stopping) {
      const clinic = await t.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
      const server = t.app.deps.provisioning.serverName(clinic.databaseServerId);
      try {
        await withClient(roleUrl(t, clinic.databaseServerId, clinic), async (c) => {
          while (!stopping) {
            n += 1;
            const marker = `w${n}`;
            await c.query("INSERT INTO patients (first_name, last_name) VALUES ('Writer', $1)", [marker]);
            acknowledged.push({ marker, server });
            notify();
          }
        });
      } catch {
        // Refused (NOLOGIN) or its session ended by the freeze: the clinic is moving; try again.
        refused += 1;
        notify();
        await new Promise((retry) => setTimeout(retry, 10));
      }
    }
  })();
  afterFile(async () => {
    stopping = true;
    await loop;
  });
  return {
    written: (count: number) => until(() => acknowledged.length >= count),
    writtenOn: (server: string, count: number) =>
      until(() => acknowledged.filter((write) => write.server === server).length >= count),
    refusals: () => refused,
    count: () => acknowledged.length,
    async stop() {
      stopping = true;
      await loop;
      return acknowledged;
    },
  };
}
