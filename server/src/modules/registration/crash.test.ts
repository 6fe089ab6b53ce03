import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, startTestApp, TEST_SECRETS } from '../../../test/harness.js';
import { REPO_ROOT } from '../../db/paths.js';

const admin = inject('pgAdminUrl');

function freePort(): Promise<number> {
  return new Promise((done) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}

/** The real server, `node src/main.ts`, in a child process that can be SIGKILLed. */
async function startServerProcess(
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'onramp-crash-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(REPO_ROOT, 'server/src/main.ts')], {
    cwd: resolve(REPO_ROOT, 'server'),
    env: {
      PATH: process.env.PATH ?? '',
      ONRAMP_ENV: 'test',
      PORT: String(port),
      // Not the default 5354: another server on this machine may hold it.
      DNS_PORT: '0',
      ONRAMP_DATA_DIR: dataDir,
      CLINIC_DATABASE_SERVERS: admin,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      PROVISIONING_LEASE_SECONDS: '2',
      LOG_LEVEL: 'fatal',
      ...TEST_SECRETS,
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  afterAll(() => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return { url, child };
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('server never became ready');
}

const REGISTER = 'mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) { __typename } }';

async function crashDuringRegistrations(mode: 'strict' | 'hybrid') {
  const databaseUrl = await createTestDatabase('crash');
  const { url, child } = await startServerProcess({ DATABASE_URL: databaseUrl, REGISTRATION_MODE: mode });
  const after = await startTestApp({
    DATABASE_URL: databaseUrl,
    REGISTRATION_MODE: mode,
    PROVISIONING_LEASE_SECONDS: '2',
    PROVISIONING_RETRY_BASE_MS: '50',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = after.app.deps.db;

  for (let i = 0; i < 5; i++) {
    const input = {
      clinicName: `Crash ${mode} ${i}`,
      country: 'FR',
      adminEmail: `crash-${mode}-${i}@example.com`,
      adminPassword: 'a sturdy passphrase 42',
      adminFirstName: 'Kill',
      adminLastName: 'Nine',
    };
    fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: REGISTER, variables: { input } }),
    }).catch(() => {});
  }
  // Kill it once the runs are under way: some steps done, none of the registrations finished.
  for (let i = 0; i < 500; i++) {
    const [row] = await prisma.$queryRaw<{ started: number; committed: number }[]>`
      SELECT count(*) FILTER (WHERE name = 'create_database')::int AS started,
             count(*) FILTER (WHERE name = 'commit' AND status = 'SUCCEEDED')::int AS committed
        FROM provisioning_steps`;
    if ((row?.started ?? 0) >= 2) break;
    await new Promise((done) => setTimeout(done, 5));
  }
  child.kill('SIGKILL');
  await new Promise((done) => child.once('exit', done));

  const running = await prisma.provisioningRun.count({ where: { status: 'RUNNING' } });
  expect(running).toBeGreaterThan(0); // the crash really left work half done

  // Once the dead process's leases expire, the survivor reconciles.
  await new Promise((done) => setTimeout(done, 2_500));
  await after.app.deps.reconciler.reconcile();
  await expect
    .poll(async () => await after.app.deps.reconciler.zombieReport(), { timeout: 20_000, interval: 250 })
    .toMatchObject({ accounts: [], orphans: [] });
  return { after, prisma };
}

describe('a SIGKILL in the middle of 5 registrations', () => {
  it('strict mode: the restart rolls back what was unfinished and leaves no zombie', async () => {
    const { after, prisma } = await crashDuringRegistrations('strict');
    expect(await prisma.provisioningRun.count({ where: { status: 'RUNNING' } })).toBe(0);
    const clinics = await prisma.clinic.findMany();
    expect(clinics.every((clinic) => clinic.status === 'READY')).toBe(true);
    for (const clinic of clinics)
      expect((await after.app.deps.provisioning.checkClinic(clinic.id)).dbStatus).toBe('HEALTHY');
    // Every user left belongs to a READY clinic.
    expect(await prisma.user.count({ where: { clinic: { status: { not: 'READY' } } } })).toBe(0);
  }, 90_000);

  it('hybrid mode: the restart finishes every registration through its job', async () => {
    const { after, prisma } = await crashDuringRegistrations('hybrid');
    await expect
      .poll(
        async () =>
          (await prisma.clinic.findMany({ select: { status: true } })).map((clinic) => clinic.status),
        { timeout: 20_000 },
      )
      .toSatisfy((statuses: string[]) => statuses.every((status) => status === 'READY'));
    await expect.poll(() => prisma.provisioningRun.count({ where: { status: 'RUNNING' } })).toBe(0);
    expect(await after.app.deps.reconciler.zombieReport()).toMatchObject({ accounts: [], orphans: [] });
    // Every registration whose central records committed survives.
    expect(await prisma.user.count({ where: { role: 'CLINIC_ADMIN' } })).toBe(await prisma.clinic.count());
  }, 90_000);
});
