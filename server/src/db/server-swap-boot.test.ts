/**
 * Onramp started while another PostgreSQL answers at a recorded clinic server's address, and the
 * recorded one still has live clinics (decision 090; server-swap-registrations.test.ts is the same
 * swap while Onramp runs). The unknown cluster is recorded _held_: no clinic, no spare, no template
 * there, reported and alerted once. It is released when the recorded server is found elsewhere
 * (the address conflict is gone) or when an operator accepts it, never on a guess; a recorded
 * server with no live clinic holds nothing back (a fresh setup is not hurt).
 */
import { describe, expect, it } from 'vitest';
import {
  afterFile,
  createTestDatabase,
  overTcp,
  runPnpm,
  startExtraPostgres,
  startTestApp,
  TEST_SECRETS,
  tempDir,
  testLogger,
} from '../../test/harness.js';
import { createClinic, RegistrationRefused } from '../../test/registration-flow.js';
import { impostorDir, inventory, serverOf } from '../../test/swap.js';
import { startEmbeddedPostgres } from './embedded.js';

const logger = testLogger({ env: 'test', logLevel: 'error' });

/** An embedded cluster of its own data directory, stopped after the file. */
async function cluster(dir: string) {
  let running = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  // `swap` makes one inside a test, where Vitest would ignore an afterAll.
  afterFile(() => running.stop());
  return {
    get url() {
      return overTcp(running.url);
    },
    stop: () => running.stop(),
    /** Started again on its saved port, or on another one when that is taken (embedded.ts). */
    async start() {
      running = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    },
  };
}

/** The recorded cluster at `dir` stopped, a fresh one (same port, same password) in its place. */
async function swap(recorded: Awaited<ReturnType<typeof cluster>>, dir: string) {
  const url = recorded.url;
  await recorded.stop();
  const other = await cluster(impostorDir(dir, 'onramp-bootident-b-'));
  expect(other.url).toBe(url);
  return other;
}

/** `pnpm -s <args>` from the repository root, as an operator runs it. */
const pnpm = (args: string[], env: Record<string, string>) =>
  runPnpm(['-s', ...args], { ONRAMP_ENV: 'test', ...TEST_SECRETS, ...env });

const SERVERS = '{ databaseServers { name reachable held reason clinics } }';
const ACCEPT = `mutation Accept($server: String!) {
  acceptDatabaseServer(server: $server) {
    __typename
    ... on DatabaseServer { name reachable held }
    ... on Error { message }
  }
}`;

describe('Onramp started with another cluster at its only clinic server’s address', async () => {
  const central = await createTestDatabase('bootident');
  const dir = tempDir('onramp-bootident-a-');
  const recorded = await cluster(dir);
  const url = recorded.url;
  const boot = (env: Record<string, string> = {}) =>
    startTestApp({
      DATABASE_URL: central,
      CLINIC_DATABASE_SERVERS: url,
      CLINIC_POOL_SIZE: '1',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      ...env,
    });

  it('holds it: no clinic, no spare, reported and alerted once; `pnpm clinics:servers accept` releases it', async () => {
    const first = await boot();
    const before = await createClinic(first, { clinicName: 'Recorded' });
    await first.app.deps.provisioning.pool.idle();
    await first.app.stop();
    const other = await swap(recorded, dir);
    const empty = await inventory(url);

    const second = await boot();
    const { db, provisioning, reconciler } = second.app.deps;
    const [recordedRow, heldRow, ...more] = await db.prisma.databaseServer.findMany({
      orderBy: { createdAt: 'asc' },
    });
    expect(more).toEqual([]);
    if (!recordedRow || !heldRow) throw new Error('two servers recorded');
    expect(heldRow).toMatchObject({
      reachable: false,
      heldReason: expect.stringContaining(recordedRow.name),
    });
    expect(db.servers.byId.size).toBe(0);
    const clinics = await db.prisma.clinic.count();
    const entries = await db.prisma.clinicObject.count();

    const burst = await Promise.allSettled(
      Array.from({ length: 2 }, (_, i) => createClinic(second, { clinicName: `Nowhere ${i}` })),
    );
    for (const result of burst) {
      const refused = (result as PromiseRejectedResult).reason;
      expect(refused).toBeInstanceOf(RegistrationRefused);
      expect({
        code: refused.code,
        message: refused.answer.result?.message ?? refused.answer.errors,
      }).toEqual({
        code: 'PROVISIONING_FAILED',
        message: expect.stringMatching(/no identified clinic database server/i),
      });
    }
    await provisioning.pool.idle();
    // Nothing there: no template, no spare, no clinic; nothing half-made centrally.
    expect(await inventory(url)).toEqual(empty);
    expect(await db.prisma.clinic.count()).toBe(clinics);
    expect(await db.prisma.clinicObject.count()).toBe(entries);
    expect(await db.prisma.clinicObject.count({ where: { serverId: heldRow.id } })).toBe(0);

    // Reported where admins see servers, and in /readyz; alerted once however many passes.
    const admin = await second.superAdmin();
    const listed = await second.gql(SERVERS, {}, admin);
    expect(listed.body.data?.databaseServers).toEqual([
      {
        name: recordedRow.name,
        reachable: false,
        held: false,
        reason: expect.stringMatching(/answers as another server/),
        clinics: 1,
      },
      {
        name: heldRow.name,
        reachable: false,
        held: true,
        reason: expect.stringMatching(/held/),
        clinics: 0,
      },
    ]);
    const ready = JSON.stringify(await fetch(`${second.url}/readyz`).then((r) => r.json()));
    expect(ready).toContain(heldRow.name);
    expect(ready).toMatch(/held/);
    await reconciler.reconcile();
    await reconciler.reconcile();
    expect(await db.prisma.mailOutbox.count({ where: { kind: 'database_server_held' } })).toBe(1);
    expect(await db.prisma.auditLog.count({ where: { action: 'database_server.held' } })).toBe(1);
    // Nothing settled or dropped: the recorded clinic's entries are as they were.
    expect(
      await db.prisma.clinicObject.count({
        where: { clinicId: before.clinicId, state: { not: 'COMMITTED' } },
      }),
    ).toBe(0);

    // A restart keeps it held (the state is central), and the audit entry is not repeated.
    await second.app.stop();
    const third = await boot();
    expect(third.app.deps.db.servers.byId.size).toBe(0);
    await third.app.deps.reconciler.reconcile();
    expect(await db.prisma.auditLog.count({ where: { action: 'database_server.held' } })).toBe(1);

    // The operator's decision, from a shell, while the server runs.
    const env = { DATABASE_URL: central, CLINIC_DATABASE_SERVERS: url };
    const listing = await pnpm(['clinics:servers'], env);
    expect(listing).toMatchObject({ code: 0, stdout: expect.stringContaining(heldRow.name) });
    expect(listing.stdout).toMatch(/held/);
    const accepted = await pnpm(['clinics:servers', 'accept', heldRow.name], env);
    expect(accepted).toMatchObject({ code: 0, stdout: expect.stringContaining(`${heldRow.name} accepted`) });
    const again = await pnpm(['clinics:servers', 'accept', heldRow.name], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not held/);
    expect(
      await db.prisma.auditLog.findMany({
        where: { action: 'database_server.accepted' },
        select: { targetId: true, actorId: true, data: true },
      }),
    ).toEqual([
      {
        targetId: heldRow.id,
        actorId: null,
        data: expect.objectContaining({ server: heldRow.name, by: expect.stringMatching(/clinics:servers/) }),
      },
    ]);
    expect(await db.prisma.databaseServer.findUniqueOrThrow({ where: { id: heldRow.id } })).toMatchObject({
      heldReason: null,
    });
    // The running instance, still seeing it held until its next refresh, does not alert it again.
    await third.app.deps.reconciler.reconcile();
    expect(await db.prisma.auditLog.count({ where: { action: 'database_server.held' } })).toBe(1);
    expect(await db.prisma.mailOutbox.count({ where: { kind: 'database_server_held' } })).toBe(1);
    // The running instance honours it at its next placement: the new clinic lands there.
    const placed = await createClinic(third, { clinicName: 'Accepted' });
    expect(await serverOf(third, placed.clinicId)).toBe(heldRow.id);
    await third.app.stop();
    await other.stop();

    // The recorded server back at its address: its clinic is there, untouched.
    await recorded.start();
    expect(recorded.url).toBe(url);
    const fourth = await boot();
    expect((await fourth.app.deps.provisioning.checkClinic(before.clinicId)).dbStatus).toBe('HEALTHY');
  }, 240_000);
});

describe('Onramp started with another cluster at one of two clinic servers’ addresses', async () => {
  const central = await createTestDatabase('bootident2');
  const dir = tempDir('onramp-bootident-a-');
  const recorded = await cluster(dir);
  const url = recorded.url;
  const spare = await startExtraPostgres();
  const boot = (urls: string[]) =>
    startTestApp({
      DATABASE_URL: central,
      CLINIC_DATABASE_SERVERS: urls.join(','),
      CLINIC_POOL_SIZE: '2',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    });

  it('places every registration on the identified server, and releases the held one when the recorded server is found elsewhere', async () => {
    const first = await boot([url, spare.url]);
    const before = await createClinic(first, { clinicName: 'Recorded' });
    await first.app.deps.provisioning.pool.idle();
    const recordedId = await serverOf(first, before.clinicId);
    await first.app.stop();
    await swap(recorded, dir);
    const empty = await inventory(url);

    const second = await boot([url, spare.url]);
    const { db, provisioning } = second.app.deps;
    const held = await db.prisma.databaseServer.findFirstOrThrow({ where: { heldReason: { not: null } } });
    const spareId = [...db.servers.byId.keys()][0];
    expect([...db.servers.byId.keys()]).toEqual([spareId]);
    const burst = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => createClinic(second, { clinicName: `Burst ${i}` })),
    );
    expect(burst.map((result) => result.status)).toEqual(Array(4).fill('fulfilled'));
    for (const result of burst)
      if (result.status === 'fulfilled') expect(await serverOf(second, result.value.clinicId)).toBe(spareId);
    await provisioning.pool.idle();
    expect(await inventory(url)).toEqual(empty);
    expect(await db.prisma.clinicObject.count({ where: { serverId: held.id } })).toBe(0);

    // The mutation: only a held server can be accepted.
    const admin = await second.superAdmin();
    const notHeld = await second.gql(ACCEPT, { server: spareId }, admin);
    expect(notHeld.body.data?.acceptDatabaseServer).toMatchObject({ __typename: 'ConflictError' });
    const unknown = await second.gql(ACCEPT, { server: 'db.nowhere.example:5432' }, admin);
    expect(unknown.body.data?.acceptDatabaseServer).toMatchObject({ __typename: 'NotFoundError' });
    await second.app.stop();

    // The recorded server started again finds its port taken, and moves (embedded.ts): configured
    // at its new address beside the old one, it is identified there, and the conflict is gone.
    await recorded.start();
    expect(recorded.url).not.toBe(url);
    const third = await boot([url, recorded.url, spare.url]);
    const servers = third.app.deps.db.servers;
    expect(servers.byId.has(recordedId)).toBe(true);
    expect(servers.byId.has(held.id)).toBe(true);
    expect(
      await third.app.deps.db.prisma.databaseServer.findUniqueOrThrow({ where: { id: held.id } }),
    ).toMatchObject({ heldReason: null, reachable: true });
    expect((await third.app.deps.provisioning.checkClinic(before.clinicId)).dbStatus).toBe('HEALTHY');
    await third.app.deps.reconciler.reconcile();
    expect(
      await third.app.deps.db.prisma.auditLog.count({
        where: { action: 'database_server.released', targetId: held.id },
      }),
    ).toBe(1);
  }, 240_000);
});

describe('another cluster at the address of a recorded server with no live clinic', async () => {
  const central = await createTestDatabase('bootident3');
  const dir = tempDir('onramp-bootident-a-');
  const recorded = await cluster(dir);
  const url = recorded.url;
  const boot = () =>
    startTestApp({
      DATABASE_URL: central,
      CLINIC_DATABASE_SERVERS: url,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    });

  it('is recorded and used as before: nothing there to lose', async () => {
    const first = await boot();
    const gone = await createClinic(first, { clinicName: 'Deleted' });
    await first.app.deps.provisioning.deleteClinic(gone.clinicId);
    await first.app.stop();
    await swap(recorded, dir);

    const second = await boot();
    const { db } = second.app.deps;
    expect(await db.prisma.databaseServer.count({ where: { heldReason: { not: null } } })).toBe(0);
    const placed = await createClinic(second, { clinicName: 'New' });
    expect(await serverOf(second, placed.clinicId)).not.toBe(await serverOf(second, gone.clinicId));
  }, 180_000);
});

describe('the recorded server back at its address while Onramp runs with the other one held', async () => {
  const central = await createTestDatabase('bootident4');
  const dir = tempDir('onramp-bootident-a-');
  const recorded = await cluster(dir);
  const url = recorded.url;
  const boot = () =>
    startTestApp({
      DATABASE_URL: central,
      CLINIC_DATABASE_SERVERS: url,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    });

  it('is used again at the next refresh, its clinic intact; the held one stays held, with nothing on it', async () => {
    const first = await boot();
    const before = await createClinic(first, { clinicName: 'Recorded' });
    const recordedId = await serverOf(first, before.clinicId);
    await first.app.stop();
    const other = await swap(recorded, dir);

    const second = await boot();
    const { db, provisioning } = second.app.deps;
    const held = await db.prisma.databaseServer.findFirstOrThrow({ where: { heldReason: { not: null } } });
    expect(db.servers.byId.size).toBe(0);
    await other.stop();
    await recorded.start();
    expect(recorded.url).toBe(url);

    await db.servers.refresh();
    expect([...db.servers.byId.keys()]).toEqual([recordedId]);
    expect(db.servers.unreachable.get(held.id)).toMatchObject({ held: true });
    expect(await db.prisma.databaseServer.findUniqueOrThrow({ where: { id: held.id } })).toMatchObject({
      heldReason: expect.stringMatching(/held/),
    });
    expect((await provisioning.checkClinic(before.clinicId)).dbStatus).toBe('HEALTHY');
    const after = await createClinic(second, { clinicName: 'After' });
    expect(await serverOf(second, after.clinicId)).toBe(recordedId);
  }, 180_000);
});
