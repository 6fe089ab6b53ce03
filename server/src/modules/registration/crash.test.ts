/**
 * Crash safety, and the reach of the reconciler that provides it: the real server is SIGKILLed
 * in the middle of registrations; a survivor started afterwards on the same central database
 * must leave no half-made clinic behind, and must never touch what is not its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, startTestApp, TEST_SECRETS } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { REPO_ROOT } from '../../db/paths.js';
import { quoteIdent, withClient } from '../../db/sql.js';
import { ownerTag, quoteLiteral } from '../provisioning/admin.js';

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
      DNS_PORT: '0', // never a fixed port: files run in parallel, and so may other checkouts
      ONRAMP_DATA_DIR: dataDir,
      CLINIC_DATABASE_SERVERS: admin,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      PROVISIONING_LEASE_SECONDS: '2',
      LOG_LEVEL: 'error',
      ...TEST_SECRETS,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Its logs (errors only) and stderr, for the message should it fail to start.
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  afterAll(() => child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${output}`);
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

interface ClinicRow {
  id: string;
  status: string;
  database_name: string;
  database_role: string;
}

/** What the central database and the clinic server hold: read directly, not through the app. */
async function snapshot(centralUrl: string) {
  const central = await withClient(centralUrl, async (client) => ({
    clinics: (
      await client.query<ClinicRow>(
        'SELECT id::text, status::text, database_name, database_role FROM clinics ORDER BY id',
      )
    ).rows,
    running: (
      await client.query<{ clinic_id: string }>(
        "SELECT clinic_id::text FROM provisioning_runs WHERE status = 'RUNNING'",
      )
    ).rows.map((row) => row.clinic_id),
    admins: Number(
      (await client.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE role = 'CLINIC_ADMIN'"))
        .rows[0]?.n,
    ),
  }));
  const names = central.clinics.flatMap((clinic) => [clinic.database_name, clinic.database_role]);
  const server = await objectsNamed(names);
  return {
    ...central,
    /** Clinics whose database exists on the server (connectable) at this moment. */
    withDatabase: central.clinics.filter((clinic) => server.databases.has(clinic.database_name)),
  };
}

/** Of these names, the databases that exist on the clinic server, connectable or not (quarantine). */
async function databasesNamed(names: string[]): Promise<Set<string>> {
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      'SELECT datname AS name FROM pg_database WHERE datname = ANY($1)',
      [names],
    );
    return new Set(rows.map((row) => row.name));
  });
}

/** Of these names, the connectable databases and the login roles that exist on the clinic server. */
async function objectsNamed(names: string[]) {
  return withClient(admin, async (client) => ({
    databases: new Set(
      (
        await client.query<{ name: string }>(
          'SELECT datname AS name FROM pg_database WHERE datname = ANY($1) AND datallowconn',
          [names],
        )
      ).rows.map((row) => row.name),
    ),
    roles: new Set(
      (
        await client.query<{ name: string }>(
          'SELECT rolname AS name FROM pg_roles WHERE rolname = ANY($1) AND rolcanlogin',
          [names],
        )
      ).rows.map((row) => row.name),
    ),
  }));
}

/**
 * Backends the killed process left: any on its central database, and those on the clinic
 * server still running a statement that names one of its clinics' databases.
 */
async function statementsInFlight(centralUrl: string, mode: string): Promise<number> {
  const central = new URL(centralUrl).pathname.slice(1);
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND (datname = $1 OR (state <> 'idle' AND query LIKE $2))`,
      [central, `%clinic_crash_${mode}_%`],
    );
    return Number(rows[0]?.n);
  });
}

function register(url: string, input: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: REGISTER, variables: { input } }),
  });
}

async function crashDuringRegistrations(mode: 'strict' | 'hybrid') {
  const centralUrl = await createTestDatabase('crash');
  const { url, child } = await startServerProcess({ DATABASE_URL: centralUrl, REGISTRATION_MODE: mode });
  const input = (i: number) => ({
    clinicName: `Crash ${mode} ${i}`,
    country: 'FR',
    adminEmail: `crash-${mode}-${i}@example.com`,
    adminPassword: 'a sturdy passphrase 42',
    adminFirstName: 'Kill',
    adminLastName: 'Nine',
    acceptedDocuments: CURRENT_ACCEPTANCES,
  });

  // One registration finishes before the crash: the survivor must keep it.
  const first = await (await register(url, input(0))).json();
  expect(first).toEqual({ data: { registerClinic: { __typename: 'RegisterClinicSuccess' } } });
  for (let i = 1; i <= 4; i++) register(url, input(i)).catch(() => {});
  // Kill it once at least two runs have created their database and are still under way.
  const underWay = () =>
    withClient(centralUrl, async (client) => {
      const { rows } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM provisioning_steps s JOIN provisioning_runs r ON r.id = s.run_id
          WHERE s.name = 'create_database' AND s.status = 'SUCCEEDED' AND r.status = 'RUNNING'`,
      );
      return Number(rows[0]?.n);
    });
  await expect.poll(underWay, { timeout: 30_000, interval: 5 }).toBeGreaterThanOrEqual(2);
  child.kill('SIGKILL');
  await new Promise((done) => child.once('exit', done));
  // A statement in flight at the kill still completes on the server (a backend outlives its
  // client until it next writes to it): the state the restart finds is the one once they are done.
  await expect.poll(() => statementsInFlight(centralUrl, mode), { timeout: 30_000, interval: 50 }).toBe(0);

  // The crash really left work half done: runs in flight, databases created, clinics unfinished.
  const atKill = await snapshot(centralUrl);
  const ready = atKill.clinics.filter((clinic) => clinic.status === 'READY');
  const unfinished = atKill.clinics.filter((clinic) => clinic.status !== 'READY');
  expect(atKill.running.length).toBeGreaterThan(0);
  expect(ready.length).toBeGreaterThanOrEqual(1);
  expect(unfinished.length).toBeGreaterThanOrEqual(1);
  expect(atKill.withDatabase.filter((clinic) => clinic.status !== 'READY').length).toBeGreaterThanOrEqual(1);

  // The survivor starts after the crash; it reconciles once the dead process's leases expire.
  const after = await startTestApp({
    DATABASE_URL: centralUrl,
    REGISTRATION_MODE: mode,
    PROVISIONING_LEASE_SECONDS: '2',
    PROVISIONING_RETRY_BASE_MS: '50',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = after.app.deps.db;
  await expect
    .poll(
      async () => {
        await after.app.deps.reconciler.reconcile();
        return prisma.provisioningRun.count({ where: { status: 'RUNNING' } });
      },
      { timeout: 20_000, interval: 250 },
    )
    .toBe(0);
  return { after, prisma, atKill, ready, unfinished };
}

describe('a SIGKILL in the middle of 5 registrations', () => {
  it('strict mode: the restart rolls back what was unfinished, keeps what was done, and leaves no zombie', async () => {
    // Named like a clinic database of this very run, made by hand: never the ledger's, never touched.
    const handMade = `clinic_crash_strict_9_${randomBytes(8).toString('hex')}`;
    await withClient(admin, (client) => client.query(`CREATE DATABASE ${quoteIdent(handMade)}`));
    afterAll(() =>
      withClient(admin, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${quoteIdent(handMade)} WITH (FORCE)`),
      ),
    );
    const { after, atKill, ready, unfinished } = await crashDuringRegistrations('strict');
    await expect
      .poll(() => after.app.deps.reconciler.zombieReport(), { timeout: 20_000, interval: 250 })
      .toMatchObject({ accounts: [], orphans: [] });
    const now = await snapshot(after.config.databaseUrl as string);
    // Exactly the clinics that were READY at the kill remain, READY and healthy, with their admin.
    expect(now.clinics.map((clinic) => clinic.id)).toEqual(ready.map((clinic) => clinic.id));
    expect(now.clinics.every((clinic) => clinic.status === 'READY')).toBe(true);
    expect(now.admins).toBe(ready.length);
    for (const clinic of now.clinics)
      expect((await after.app.deps.provisioning.checkClinic(clinic.id)).dbStatus).toBe('HEALTHY');
    // On the server: the kept clinics' databases and roles are there; nothing of the rolled-back
    // ones can still be connected to or logged in with.
    const kept = await objectsNamed(ready.flatMap((clinic) => [clinic.database_name, clinic.database_role]));
    expect([...kept.databases].sort()).toEqual(ready.map((clinic) => clinic.database_name).sort());
    expect([...kept.roles].sort()).toEqual(ready.map((clinic) => clinic.database_role).sort());
    const gone = await objectsNamed(
      unfinished.flatMap((clinic) => [clinic.database_name, clinic.database_role]),
    );
    expect(gone).toEqual({ databases: new Set(), roles: new Set() });
    expect(atKill.clinics.length).toBeGreaterThan(now.clinics.length);

    // Exactly the databases the killed runs created and never committed are in quarantine (kept,
    // closed); the purge drops them once their retention is over, and nothing else.
    const { ledger } = after.app.deps.provisioning;
    const created = atKill.withDatabase.filter((clinic) => clinic.status !== 'READY');
    expect(created.length).toBeGreaterThan(0);
    const quarantined = (await ledger.quarantined()).filter((entry) => entry.kind === 'DATABASE');
    expect(quarantined.map((entry) => entry.name).sort()).toEqual(
      created.map((clinic) => clinic.database_name).sort(),
    );
    const trash = quarantined.map((entry) => entry.trashName ?? '');
    expect(await databasesNamed(trash)).toEqual(new Set(trash));
    expect(await ledger.purgeDue(new Date())).toMatchObject({ purged: 0 }); // not yet due
    const due = new Date(Date.now() + after.config.clinicTrashRetentionSeconds * 1000 + 1000);
    await after.app.deps.reconciler.purge(due); // the purge job's work, on a clock past the retention
    expect(await databasesNamed(trash)).toEqual(new Set());
    expect(await ledger.quarantined()).toEqual([]);
    const keptAfterPurge = await objectsNamed([...ready.map((clinic) => clinic.database_name), handMade]);
    expect(keptAfterPurge.databases).toEqual(
      new Set([...ready.map((clinic) => clinic.database_name), handMade]),
    );
  }, 120_000);

  it('hybrid mode: the restart finishes every registration whose central records committed', async () => {
    const { after, prisma, atKill, unfinished } = await crashDuringRegistrations('hybrid');
    await expect
      .poll(
        async () =>
          (await prisma.clinic.findMany({ select: { status: true } })).map((clinic) => clinic.status),
        { timeout: 30_000 },
      )
      .toSatisfy((statuses: string[]) => statuses.every((status) => status === 'READY'));
    expect(await after.app.deps.reconciler.zombieReport()).toMatchObject({ accounts: [], orphans: [] });
    const now = await snapshot(after.config.databaseUrl as string);
    // Nothing was rolled back: every clinic of the kill is there, finished, with its admin.
    expect(now.clinics.map((clinic) => clinic.id)).toEqual(atKill.clinics.map((clinic) => clinic.id));
    expect(unfinished.length).toBeGreaterThan(0);
    expect(now.admins).toBe(now.clinics.length);
    for (const clinic of now.clinics)
      expect((await after.app.deps.provisioning.checkClinic(clinic.id)).dbStatus).toBe('HEALTHY');
    const server = await objectsNamed(
      now.clinics.flatMap((clinic) => [clinic.database_name, clinic.database_role]),
    );
    expect(server.databases.size).toBe(now.clinics.length);
    expect(server.roles.size).toBe(now.clinics.length);
  }, 120_000);
});

describe("the reconciler's reach", async () => {
  // Two deployments share the clinic server, as two installations (or staging and production) may.
  const ours = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const theirs = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const suffix = () => randomBytes(8).toString('hex');
  // Named like clinic objects, to tempt a sweep that matches on names.
  const handMade = { database: `clinic_by_hand_${suffix()}`, role: `clinic_by_hand_${suffix()}` };
  const foreign = { database: `clinic_foreign_${suffix()}`, role: `clinic_foreign_${suffix()}` };
  await withClient(admin, async (client) => {
    await client.query(`CREATE ROLE ${quoteIdent(handMade.role)} LOGIN`);
    await client.query(`CREATE DATABASE ${quoteIdent(handMade.database)}`);
    await client.query(`CREATE ROLE ${quoteIdent(foreign.role)} LOGIN`);
    await client.query(`CREATE DATABASE ${quoteIdent(foreign.database)}`);
    // Tagged as a deployment that is neither of the two, which no clinic of anyone's owns.
    const tag = quoteLiteral(ownerTag(randomUUID()));
    await client.query(`COMMENT ON DATABASE ${quoteIdent(foreign.database)} IS ${tag}`);
    await client.query(`COMMENT ON ROLE ${quoteIdent(foreign.role)} IS ${tag}`);
  });
  afterAll(() =>
    withClient(admin, async (client) => {
      for (const { database, role } of [handMade, foreign]) {
        await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
        await client.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
      }
    }),
  );

  it("never touches another deployment's clinic databases, nor a database or role created by hand", async () => {
    const registered = await theirs.gql<{ registerClinic: { __typename: string; clinic: { id: string } } }>(
      'mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) { __typename ... on RegisterClinicSuccess { clinic { id } } } }',
      {
        input: {
          clinicName: 'Their clinic',
          country: 'FR',
          adminEmail: 'theirs@example.com',
          adminPassword: 'a sturdy passphrase 42',
          adminFirstName: 'T',
          adminLastName: 'H',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(registered.body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    const theirClinic = await theirs.app.deps.db.prisma.clinic.findUniqueOrThrow({
      where: { id: registered.body.data?.registerClinic.clinic.id },
    });
    const names = [
      handMade.database,
      handMade.role,
      foreign.database,
      foreign.role,
      theirClinic.databaseName,
      theirClinic.databaseRole,
    ];
    const before = await objectsNamed(names);
    expect(before.databases.size + before.roles.size).toBe(6);

    const report = await ours.app.deps.reconciler.zombieReport();
    expect(report.orphans.filter((orphan) => names.includes(orphan.name))).toEqual([]);
    await ours.app.deps.reconciler.reconcile();
    await ours.app.deps.reconciler.reconcile();
    // Nor does the purge, even a year on: it acts on ledger entries only, never on names.
    await ours.app.deps.provisioning.ledger.purgeDue(new Date(Date.now() + 365 * 86_400_000));

    expect(await objectsNamed(names)).toEqual(before);
    expect((await theirs.app.deps.provisioning.checkClinic(theirClinic.id)).dbStatus).toBe('HEALTHY');
  });
});
