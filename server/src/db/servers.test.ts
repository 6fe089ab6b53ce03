/**
 * Clinic database servers are known by identity (docs/decisions/040): an address change, a
 * second URL for the same server, or a server down at start never costs a clinic its data.
 * Every test restarts Onramp for real (a fresh process state on the same central database).
 */
import { readFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  afterFile,
  createTestDatabase,
  type TestApp,
  tempDir,
  testConfig,
  testLogger,
} from '../../test/harness.js';
import { clinicWithAdmin } from '../../test/registration-flow.js';
import { impostorDir } from '../../test/swap.js';
import { type App, buildApp } from '../app.js';
import { openDatabases } from './database.js';
import { startEmbeddedPostgres } from './embedded.js';

interface Running {
  app: App;
  url: string;
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: { data?: T; errors?: unknown[] }; headers: Headers }>;
  superAdmin(): Promise<{ authorization: string }>;
  stop(): Promise<void>;
}

/** Starts Onramp as `pnpm start` would, on `env`; stopped by the caller (or after the file). */
async function boot(env: Record<string, string | undefined>): Promise<Running> {
  const config = testConfig({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0', ...env });
  const logger = testLogger(config);
  const db = await openDatabases(config, logger);
  const app = await buildApp(
    { config, logger, db, startedAt: new Date() },
    { drainTimeoutMs: 1_000, jobPollIntervalMs: 100, dnsPort: false },
  );
  const url = await app.start();
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= app.stop();
    return stopped;
  };
  afterFile(stop);
  return {
    app,
    url,
    stop,
    async gql(query, variables, headers = {}) {
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: (await response.json()) as never, headers: response.headers };
    },
    async superAdmin() {
      const admin = await db.prisma.user.findUniqueOrThrow({ where: { email: config.adminEmail } });
      const session = await app.deps.auth.startSession(admin.id, { ip: '127.0.0.1' }, 'test');
      return { authorization: `Bearer ${session.accessToken}` };
    },
  };
}

/** A READY clinic with a patient written into its own database, as its admin would. */
async function clinicWithPatient(running: Running) {
  // The flow helpers need only gql and superAdmin, which Running has.
  const { clinic } = await clinicWithAdmin(running as unknown as TestApp);
  const prisma = await running.app.deps.provisioning.clients.get(clinic.id);
  await prisma.patient.create({ data: { firstName: 'Ada', lastName: `Lovelace ${clinic.id}` } });
  return clinic;
}

/** After a restart: healthy, the patient still there, and the sweep finds nothing to act on. */
async function expectIntact(running: Running, clinicId: string) {
  const { provisioning, reconciler } = running.app.deps;
  expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
  await reconciler.reconcile();
  const report = await reconciler.zombieReport();
  expect(report.orphans).toEqual([]);
  expect(report.accounts).toEqual([]);
  const prisma = await provisioning.clients.get(clinicId);
  expect(await prisma.patient.count({ where: { lastName: `Lovelace ${clinicId}` } })).toBe(1);
  expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
}

/** A TCP forwarder from a free loopback port to `port`: the same server under another address. */
async function forwarder(port: number): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const upstream = connect(port, '127.0.0.1');
    sockets.add(socket).add(upstream);
    socket.pipe(upstream).pipe(socket);
    const close = () => {
      socket.destroy();
      upstream.destroy();
    };
    socket.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  afterFile(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((done) => server.close(done));
  });
  return (server.address() as AddressInfo).port;
}

/** `url` over TCP at `hostname:port`, without the embedded server's Unix socket (`host`). */
function withPort(url: string, port: number, hostname = '127.0.0.1'): string {
  const parsed = new URL(url);
  parsed.port = String(port);
  parsed.hostname = hostname;
  parsed.searchParams.delete('host');
  return parsed.toString();
}

describe('the embedded server restarted on another port (issue 11, case 1)', () => {
  it('keeps every clinic attached and its rows intact', async () => {
    // `pnpm start` with a data dir: the embedded PostgreSQL holds the central and clinic databases.
    const dataDir = tempDir('onramp-identity-');
    const embedded = {
      DATABASE_URL: undefined,
      CLINIC_DATABASE_SERVERS: undefined,
      ONRAMP_DATA_DIR: dataDir,
    };
    const first = await boot(embedded);
    const clinic = await clinicWithPatient(first);
    await first.stop();

    // Something else takes the saved port; the next start picks another one.
    const saved = JSON.parse(readFileSync(join(dataDir, 'postgres', 'embedded.json'), 'utf8')) as {
      port: number;
    };
    const squatter = createServer();
    await new Promise<void>((done) => squatter.listen(saved.port, '127.0.0.1', done));
    afterFile(() => new Promise((done) => squatter.close(done)));
    const second = await boot(embedded);
    const moved = JSON.parse(readFileSync(join(dataDir, 'postgres', 'embedded.json'), 'utf8')) as {
      port: number;
    };
    expect(moved.port).not.toBe(saved.port);

    await expectIntact(second, clinic.id);
    const servers = await second.app.deps.db.prisma.databaseServer.findMany();
    expect(servers).toHaveLength(1);
    expect(servers[0]).toMatchObject({ address: `127.0.0.1:${moved.port}`, reachable: true });
    await second.stop();
  }, 120_000);
});

describe('one clinic server under several addresses', async () => {
  const dir = tempDir('onramp-identity-pg-');
  const logger = testLogger({ env: 'test', logLevel: 'warn' });
  let server = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterAll(() => server.stop());
  const port = Number(new URL(server.url).port);
  const central = await createTestDatabase('identity');

  it('is the same server through localhost, 127.0.0.1 and a TCP forwarder: nothing quarantined, nothing dropped', async () => {
    const first = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: server.url });
    const clinic = await clinicWithPatient(first);
    await first.stop();

    for (const url of [
      withPort(server.url, port, 'localhost'),
      withPort(server.url, await forwarder(port)),
    ]) {
      const again = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: url });
      await expectIntact(again, clinic.id);
      const servers = await again.app.deps.db.prisma.databaseServer.findMany();
      expect(servers).toHaveLength(1);
      expect(servers[0]?.address).toBe(`${new URL(url).hostname}:${new URL(url).port}`);
      expect(await again.app.deps.db.prisma.clinicObject.count({ where: { state: 'QUARANTINED' } })).toBe(0);
      await again.stop();
    }
  }, 120_000);

  it('a row recorded before identities existed (host:port only) is adopted: the clinics stay attached, intact', async () => {
    const first = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: server.url });
    const clinic = await clinicWithPatient(first);
    const { prisma } = first.app.deps.db;
    // What the identity migration made of the old `clinic.databaseServer` key: an address, no
    // identifier; and here an address the server is no longer reached at.
    await prisma.databaseServer.updateMany({
      data: { systemIdentifier: null, address: 'db.old.example:5432' },
    });
    await first.stop();

    const again = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: server.url });
    await expectIntact(again, clinic.id);
    const servers = await again.app.deps.db.prisma.databaseServer.findMany();
    expect(servers).toHaveLength(1);
    expect(servers[0]).toMatchObject({ address: `127.0.0.1:${port}`, reachable: true });
    expect(servers[0]?.systemIdentifier).toMatch(/^\d+$/);
    await again.stop();
  }, 120_000);

  it('down at start: its clinics are reported unreachable, nothing is touched, and they are HEALTHY once it is back', async () => {
    const first = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: server.url });
    const clinic = await clinicWithPatient(first);
    await first.stop();
    await server.stop();

    const again = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: server.url });
    const { provisioning, reconciler } = again.app.deps;
    const down = await provisioning.checkClinic(clinic.id);
    expect(down).toMatchObject({ dbStatus: 'UNHEALTHY', serverReachable: false });
    expect(down.errors.join(' ')).toMatch(/unreachable/);
    await reconciler.reconcile();
    expect((await reconciler.zombieReport()).orphans).toEqual([]);
    const ready = (await fetch(`${again.url}/readyz`).then((r) => r.json())) as Record<string, unknown>;
    expect(JSON.stringify(ready)).toMatch(/unreachable/);

    server = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    await expect
      .poll(async () => (await provisioning.checkClinic(clinic.id)).dbStatus, { timeout: 20_000 })
      .toBe('HEALTHY');
    await expectIntact(again, clinic.id);
    await again.stop();
  }, 120_000);
});

describe('another server answering where a recorded one was expected (identity mismatch)', async () => {
  const logger = testLogger({ env: 'test', logLevel: 'warn' });
  const dir = tempDir('onramp-identity-a-');
  const recorded = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterAll(() => recorded.stop());
  // Over TCP: each cluster has a socket directory of its own, so only a port can be taken over.
  const recordedUrl = withPort(recorded.url, Number(new URL(recorded.url).port));
  const central = await createTestDatabase('mismatch');

  it('is reported (health, zombieReport, /readyz) and alerted once, and nothing is changed', async () => {
    const first = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: recordedUrl });
    const clinic = await clinicWithPatient(first);
    await first.stop();
    await recorded.stop();
    // A new cluster on the same port with the same password: the same URL, another server.
    const other = await startEmbeddedPostgres({
      dir: impostorDir(dir, 'onramp-identity-b-'),
      logger,
      ephemeral: true,
    });
    afterFile(() => other.stop());
    expect(withPort(other.url, Number(new URL(other.url).port))).toBe(recordedUrl);

    const again = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: recordedUrl });
    const { provisioning, reconciler, db } = again.app.deps;
    const health = await provisioning.checkClinic(clinic.id);
    expect(health).toMatchObject({ serverReachable: false });
    expect(health.errors.join(' ')).toMatch(/answers as another server/);
    const ready = (await fetch(`${again.url}/readyz`).then((r) => r.json())) as Record<string, unknown>;
    expect(JSON.stringify(ready)).toMatch(/answers as another server/);
    await reconciler.reconcile();
    await reconciler.reconcile();
    const report = await reconciler.zombieReport();
    expect(report.accounts).toEqual([
      expect.objectContaining({
        clinicId: clinic.id,
        reason: expect.stringMatching(/answers as another server/),
      }),
    ]);
    expect(report.orphans).toEqual([]);
    // One alert per super-admin address for the incident, however many passes see it.
    const alerts = () => db.prisma.mailOutbox.count({ where: { kind: 'database_server_identity_mismatch' } });
    expect(await alerts()).toBe(1);
    expect(await db.prisma.auditLog.count({ where: { action: 'database_server.identity_mismatch' } })).toBe(
      1,
    );
    // Nothing changed: the clinic still names its server, its ledger entries are untouched.
    const row = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    const recordedRow = await db.prisma.databaseServer.findUniqueOrThrow({
      where: { id: row.databaseServerId },
    });
    expect(recordedRow).toMatchObject({ reachable: false });
    expect(
      await db.prisma.clinicObject.count({ where: { clinicId: clinic.id, state: { not: 'COMMITTED' } } }),
    ).toBe(0);
    await again.stop();
    await other.stop();

    // The recorded server back at its address: the clinic is HEALTHY, its patient there; the
    // incident ends, and a new mismatch would be alerted again.
    const back = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    afterFile(() => back.stop());
    const third = await boot({ DATABASE_URL: central, CLINIC_DATABASE_SERVERS: back.url });
    await expectIntact(third, clinic.id);
    expect(
      await third.app.deps.db.prisma.auditLog.count({
        where: { action: 'database_server.identity_restored' },
      }),
    ).toBe(1);
    await third.stop();
  }, 180_000);
});
