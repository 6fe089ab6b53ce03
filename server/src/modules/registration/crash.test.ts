/**
 * Crash safety, and the reach of the reconciler that provides it: the real server is SIGKILLed
 * in the middle of registrations; a survivor started afterwards on the same central database
 * must leave no half-made clinic behind, and must never touch what is not its own.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { afterFile, createTestDatabase, jobRow, startTestApp, TEST_SECRETS } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { startServerProcess } from '../../../test/server-process.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';
import { quoteIdent, withClient } from '../../db/sql.js';
import { ownerTag, quoteLiteral } from '../provisioning/admin.js';

const admin = inject('pgAdminUrl');

/** When the running crash test's own timeout ends: a wait gives up before it, saying what was pending. */
let testEndsAt = Number.POSITIVE_INFINITY;

/**
 * Probes until `done` holds, for at most `budgetMs` and never past the test's own end, so a
 * failure names what was still pending (`pending`) instead of vitest's bare test timeout.
 * A probe that throws counts as not done yet; its last error is in the failure. `gaveUp`, when
 * it returns a reason, ends the wait at once (a child that exited will never listen).
 */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  options: {
    budgetMs: number;
    intervalMs: number;
    pending: () => Promise<string> | string;
    gaveUp?: () => string | null;
  },
): Promise<T> {
  const started = Date.now();
  const end = Math.min(started + options.budgetMs, testEndsAt - 5_000);
  let lastError: unknown;
  for (;;) {
    const reason = options.gaveUp?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const value = await probe();
      if (done(value)) return value;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= end) {
      const why = lastError instanceof Error ? `\nlast probe failed: ${lastError.message}` : '';
      const pending = await Promise.resolve()
        .then(options.pending)
        .catch((error: unknown) => `(could not say: ${error instanceof Error ? error.message : error})`);
      throw new Error(`${what}: not after ${Date.now() - started} ms; still pending:\n${pending}${why}`);
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, options.intervalMs));
  }
}

/**
 * The real server in a child process that can be SIGKILLed (server/test/server-process.ts: it
 * picks its own port), given no more of its time to start than the test has left.
 */
/** The instance that outlives a killed one, on the same central database: short leases, no pool, no sweep. */
const startSurvivor = (centralUrl: string, env: Record<string, string> = {}) =>
  startTestApp({
    DATABASE_URL: centralUrl,
    PROVISIONING_LEASE_SECONDS: '2',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    ...env,
  });

const startServer = (env: Record<string, string>, onSpawn?: (child: ChildProcess) => void) =>
  startServerProcess(
    { ONRAMP_ENV: 'test', PROVISIONING_LEASE_SECONDS: '2', ...TEST_SECRETS, ...env },
    { budgetMs: Math.min(120_000, testEndsAt - 5_000 - Date.now()), onSpawn },
  );

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

/** The killed process's backends still counted by `statementsInFlight`: what each is doing. */
async function describeStatementsInFlight(centralUrl: string, mode: string): Promise<string> {
  const central = new URL(centralUrl).pathname.slice(1);
  return withClient(admin, async (client) => {
    // The statement's first words only: a CREATE ROLE's text carries the clinic role's password.
    const { rows } = await client.query<Record<string, string>>(
      `SELECT pid, datname, state, coalesce(wait_event_type || ':' || wait_event, '-') AS wait,
              round(extract(epoch FROM now() - query_start))::text AS seconds,
              array_to_string((regexp_split_to_array(query, '\\s+'))[1:3], ' ') AS statement
         FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
          AND (datname = $1 OR (state <> 'idle' AND query LIKE $2))`,
      [central, `%clinic_crash_${mode}_%`],
    );
    return rows
      .map(
        (row) =>
          `backend ${row.pid} on ${row.datname}: ${row.state}, waiting ${row.wait}, for ${row.seconds} s on ${row.statement}`,
      )
      .join('\n');
  });
}

/** Every run, with its clinic, lease and steps, and the clinics' provisioning jobs: what a wait on runs is waiting for. */
async function describeRuns(centralUrl: string): Promise<string> {
  return withClient(centralUrl, async (client) => {
    const runs = await client.query<Record<string, string>>(
      `SELECT r.id::text, r.kind::text, r.status::text, r.attempt::text, coalesce(r.subject_name, '-') AS clinic,
              coalesce(c.status::text, 'gone') AS clinic_status,
              coalesce(round(extract(epoch FROM r.lease_until - now()), 1)::text, '-') AS lease,
              coalesce(string_agg(s.name || ' ' || s.status, ', ' ORDER BY s.started_at), 'none') AS steps
         FROM provisioning_runs r
         LEFT JOIN clinics c ON c.id = r.clinic_id
         LEFT JOIN provisioning_steps s ON s.run_id = r.id
        GROUP BY r.id, c.status ORDER BY r.started_at`,
    );
    const jobs = await client.query<Record<string, string>>(
      `SELECT key, attempts::text, round(extract(epoch FROM run_at - now()), 1)::text AS due_in,
              (locked_at IS NOT NULL)::text AS locked
         FROM graphile_worker.jobs WHERE starts_with(key, 'provision:') ORDER BY key`,
    );
    return [
      ...runs.rows.map(
        (run) =>
          `run ${run.id} (${run.kind} #${run.attempt}) of "${run.clinic}" (clinic ${run.clinic_status}): ` +
          `${run.status}, lease ${run.lease} s, steps: ${run.steps}`,
      ),
      ...jobs.rows.map(
        (job) => `job ${job.key}: attempts ${job.attempts}, due in ${job.due_in} s, locked ${job.locked}`,
      ),
    ].join('\n');
  });
}

/**
 * A transaction holding `table` locked: `clinics` is the table the jobs of these tests read
 * first; `dns_records` the one a registration writes first after its database exists (the
 * built-in DNS provider's, step `dns`).
 */
async function lockTable(centralUrl: string, table: 'clinics' | 'dns_records'): Promise<pg.Client> {
  const blocker = new pg.Client({ connectionString: centralUrl });
  await blocker.connect();
  afterFile(() => blocker.end().catch(() => {}));
  await blocker.query('BEGIN');
  await blocker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  return blocker;
}

/**
 * SIGKILLs `child` while its job waits on `blocker`'s lock, then releases the lock and waits
 * until the killed process's statements have ended ({@link statementsInFlight}, its `mode`).
 * @returns when the child exited
 */
async function killWhileHeld(child: ChildProcess, blocker: pg.Client, centralUrl: string, mode: string) {
  child.kill('SIGKILL');
  await new Promise((done) => child.once('exit', done));
  const killedAt = Date.now();
  await blocker.query('ROLLBACK');
  await blocker.end();
  await waitFor(
    "the killed process's statements to end",
    () => statementsInFlight(centralUrl, mode),
    (n) => n === 0,
    { budgetMs: 60_000, intervalMs: 50, pending: () => describeStatementsInFlight(centralUrl, mode) },
  );
  return killedAt;
}

/** Backends on the central database, other than `blocker`'s, waiting for a lock (the one `blocker` holds). */
function waitersOnLock(centralUrl: string, blocker: pg.Client): Promise<number> {
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = $1 AND wait_event_type = 'Lock' AND pid <> $2`,
      [new URL(centralUrl).pathname.slice(1), (blocker as unknown as { processID: number }).processID],
    );
    return rows[0]?.n ?? 0;
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
  const { url, child } = await startServer({ DATABASE_URL: centralUrl, REGISTRATION_MODE: mode });
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
  // Kill it once at least two runs have created their database and are still under way: held
  // at dns by a lock, so that the moment exists whatever the machine's load (a poll for it, when
  // registrations ran free, saw all four end first under a loaded suite). The others are
  // wherever they are; the held ones' records are written once the lock goes, after the kill.
  const blocker = await lockTable(centralUrl, 'dns_records');
  for (let i = 1; i <= 4; i++) register(url, input(i)).catch(() => {});
  await waitFor(
    'two runs held at dns, their database created',
    () => waitersOnLock(centralUrl, blocker),
    (n) => n >= 2,
    { budgetMs: 60_000, intervalMs: 20, pending: () => describeRuns(centralUrl) },
  );
  await killWhileHeld(child, blocker, centralUrl, mode);

  // The crash really left work half done: runs in flight, databases created, clinics unfinished.
  const atKill = await snapshot(centralUrl);
  const ready = atKill.clinics.filter((clinic) => clinic.status === 'READY');
  const unfinished = atKill.clinics.filter((clinic) => clinic.status !== 'READY');
  expect(atKill.running.length).toBeGreaterThan(0);
  expect(ready.length).toBeGreaterThanOrEqual(1);
  expect(unfinished.length).toBeGreaterThanOrEqual(1);
  expect(atKill.withDatabase.filter((clinic) => clinic.status !== 'READY').length).toBeGreaterThanOrEqual(1);

  // The survivor starts after the crash; it reconciles once the dead process's leases expire.
  const after = await startSurvivor(centralUrl, {
    REGISTRATION_MODE: mode,
    PROVISIONING_RETRY_BASE_MS: '50',
  });
  const { prisma } = after.app.deps.db;
  await waitFor(
    'the survivor to take over every run',
    async () => {
      await after.app.deps.reconciler.reconcile();
      return prisma.provisioningRun.count({ where: { status: 'RUNNING' } });
    },
    (n) => n === 0,
    { budgetMs: 60_000, intervalMs: 250, pending: () => describeRuns(centralUrl) },
  );
  return { after, prisma, atKill, ready, unfinished };
}

describe('a SIGKILL in the middle of 5 registrations', () => {
  // 240 s each: under a busy batch (the whole suite on two workers) every phase runs several
  // times slower than alone; the child alone took up to 23 s to start (2.6 s idle).
  beforeEach(({ task }) => {
    testEndsAt = Date.now() + task.timeout;
  });

  it('strict mode: the restart rolls back what was unfinished, keeps what was done, and leaves no zombie', async () => {
    // Named like a clinic database of this very run, made by hand: never the ledger's, never touched.
    const handMade = `clinic_crash_strict_9_${randomBytes(8).toString('hex')}`;
    await withClient(admin, (client) => client.query(`CREATE DATABASE ${quoteIdent(handMade)}`));
    afterFile(() =>
      withClient(admin, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${quoteIdent(handMade)} WITH (FORCE)`),
      ),
    );
    const { after, atKill, ready, unfinished } = await crashDuringRegistrations('strict');
    let report = await after.app.deps.reconciler.zombieReport();
    await waitFor(
      'no zombie account and no unquarantined orphan',
      async () => {
        report = await after.app.deps.reconciler.zombieReport();
        return report;
      },
      ({ accounts, orphans }) => accounts.length === 0 && orphans.length === 0,
      {
        budgetMs: 60_000,
        intervalMs: 250,
        pending: async () =>
          `accounts: ${JSON.stringify(report.accounts)}\norphans: ${JSON.stringify(report.orphans)}\n` +
          (await describeRuns(after.config.databaseUrl as string)),
      },
    );
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
  }, 240_000);

  it('hybrid mode: the restart finishes every registration whose central records committed', async () => {
    const { after, prisma, atKill, unfinished } = await crashDuringRegistrations('hybrid');
    await waitFor(
      'every clinic READY',
      () => prisma.clinic.findMany({ select: { name: true, status: true } }),
      (clinics) => clinics.every((clinic) => clinic.status === 'READY'),
      {
        budgetMs: 60_000,
        intervalMs: 100,
        pending: async () => describeRuns(after.config.databaseUrl as string),
      },
    );
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
  }, 240_000);
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

describe('a SIGKILL while a job runs', () => {
  beforeEach(({ task }) => {
    testEndsAt = Date.now() + task.timeout;
  });

  it("a survivor runs the job the killed instance held, within a minute (not graphile-worker's 4 hours)", async () => {
    const centralUrl = await createTestDatabase('crashjob');
    const { child } = await startServer({ DATABASE_URL: centralUrl });
    // The purge job (a named queue, as in production) held at its first statement: the test
    // locks the table it reads, as a slow database would hold it.
    const blocker = await lockTable(centralUrl, 'clinics');
    const id = await withClient(centralUrl, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT (graphile_worker.add_job('purge_quarantine', '{}'::json,
           job_key => 'purge_quarantine', queue_name => 'purge_quarantine')).id::text AS id`,
      );
      return rows[0]?.id;
    });
    const theJob = () => jobRow(centralUrl, id);
    const waitingOnTheLock = () => waitersOnLock(centralUrl, blocker);
    await waitFor(
      "the child's worker to hold the job, blocked on the table",
      async () => ((await theJob())?.locked_by ? await waitingOnTheLock() : 0),
      (n) => n > 0,
      { budgetMs: 60_000, intervalMs: 50, pending: async () => JSON.stringify(await theJob()) },
    );
    const killedAt = await killWhileHeld(child, blocker, centralUrl, 'crashjob');
    // What the kill left: the job locked by a worker that no longer exists.
    expect((await theJob())?.locked_by).toBeTruthy();

    const after = await startSurvivor(centralUrl);
    const startedAt = Date.now();
    await waitFor('the survivor to run the job to its end', theJob, (row) => row === undefined, {
      budgetMs: 60_000,
      intervalMs: 100,
      pending: async () => `the job: ${JSON.stringify(await theJob())}`,
    });
    const ranAfter = Date.now() - killedAt;
    // For the record (decision 082): from the kill, and from the survivor's start.
    console.info(
      `job done ${ranAfter} ms after the kill, ${Date.now() - startedAt} ms after the survivor started`,
    );
    expect(ranAfter).toBeLessThan(60_000);
    // The dead pool is forgotten; the survivor's own is the only one left.
    expect(await after.app.deps.db.prisma.jobWorker.count()).toBe(1);
  }, 240_000);

  it('a kill before the worker pool is recorded leaves no job locked by it: a survivor runs the job at once', async () => {
    const centralUrl = await createTestDatabase('crashgate');
    // A due job waits before the child starts, so that its workers' first fetch would find it.
    const id = await withClient(centralUrl, async (client) => {
      const { rows } = await client.query<{ id: string }>(
        `SELECT (graphile_worker.add_job('purge_quarantine', '{}'::json,
           job_key => 'purge_quarantine', queue_name => 'purge_quarantine')).id::text AS id`,
      );
      return rows[0]?.id;
    });
    // The window between the pool's creation and its row's commit, widened: the INSERT into
    // job_workers waits on this lock (reads go on), and the job, if fetched, is held at the
    // purge's own lock (provisioning/ledger.ts purgeDue), so that it is still locked when the
    // child dies (the server's start-up writes rows that reference clinics: that table stays free).
    const blocker = new pg.Client({ connectionString: centralUrl });
    await blocker.connect();
    afterFile(() => blocker.end().catch(() => {}));
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE job_workers IN SHARE ROW EXCLUSIVE MODE');
    await blocker.query("SELECT pg_advisory_xact_lock(hashtext('onramp:purge'))");
    // Not awaited: the child is not ready while its pool is unrecorded.
    let child: ChildProcess | undefined;
    const spawned = startServer({ DATABASE_URL: centralUrl }, (spawnedChild) => {
      child = spawnedChild;
    }).catch(() => undefined);
    const theJob = () => jobRow(centralUrl, id);
    const workerBackends = (where: string) =>
      withClient(admin, async (client) => {
        const { rows } = await client.query<{ pid: number; query: string; wait: string }>(
          `SELECT pid, left(query, 40) AS query, coalesce(wait_event_type, '-') AS wait FROM pg_stat_activity
            WHERE datname = $1 AND application_name LIKE 'onramp-worker %' ${where}`,
          [new URL(centralUrl).pathname.slice(1)],
        );
        return rows;
      });
    const insertWaiting = `AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO job_workers%'`;
    await waitFor(
      'the child to record its worker pool, blocked on the table',
      () => workerBackends(insertWaiting),
      (rows) => rows.length > 0,
      {
        budgetMs: 90_000,
        intervalMs: 50,
        pending: () => describeStatementsInFlight(centralUrl, 'gate'),
      },
    );
    // Its workers fetch right after the pool's creation: a second is ample for one to lock the
    // job, if anything lets it.
    const lockedBy = await waitFor(
      'a worker of the child to lock the job',
      theJob,
      (row) => Boolean(row?.locked_by),
      {
        budgetMs: 3_000,
        intervalMs: 50,
        pending: () => '',
      },
    ).then(
      (row) => row?.locked_by,
      () => null,
    );
    if (!child) throw new Error('the child was never spawned');
    const killed = child;
    killed.kill('SIGKILL');
    await new Promise((done) => killed.once('exit', done));
    await spawned;
    // The INSERT was in flight: waiting on the lock, its backend would commit it once the lock
    // goes. A kill a moment earlier never sent it, which is the case to show: the killed
    // process's backends are ended, as the kernel ends them when they are idle.
    await withClient(admin, (client) =>
      client.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'onramp-worker %'`,
        [new URL(centralUrl).pathname.slice(1)],
      ),
    );
    await blocker.query('ROLLBACK');
    await blocker.end();
    await waitFor(
      "the killed process's worker backends to end",
      () => workerBackends(''),
      (rows) => rows.length === 0,
      {
        budgetMs: 10_000,
        intervalMs: 50,
        pending: async () => JSON.stringify(await workerBackends('')),
      },
    );
    const pools = () =>
      withClient(
        centralUrl,
        async (client) =>
          (await client.query<{ worker_id: string }>('SELECT worker_id FROM job_workers')).rows,
      );
    console.info(
      `the killed child's worker locked the job: ${lockedBy ?? 'no'}; pools recorded: ${JSON.stringify(await pools())}`,
    );

    const after = await startSurvivor(centralUrl);
    const startedAt = Date.now();
    // Well past decision 082's release (about 12 s after the kill), far short of the 4-hour reset.
    await waitFor('the survivor to run the job to its end', theJob, (row) => row === undefined, {
      budgetMs: 30_000,
      intervalMs: 100,
      pending: async () =>
        `the job: ${JSON.stringify(await theJob())}; pools recorded: ${JSON.stringify(await pools())}`,
    });
    console.info(`job done ${Date.now() - startedAt} ms after the survivor started`);
    // Run once: never held by the dead pool, so never released; the survivor's pool is the only one.
    expect(await after.app.deps.db.prisma.jobRelease.count()).toBe(0);
    expect(await after.app.deps.db.prisma.jobWorker.count()).toBe(1);
  }, 240_000);

  it('hybrid mode: a registration whose provision_clinic job the killed instance held ends READY, its mail sent once', async () => {
    const sink = await startSmtpSink();
    afterFile(() => sink.stop());
    const centralUrl = await createTestDatabase('crashheld');
    // The first attempt fails at dns (an injected, transient fault): the clinic is PENDING with its
    // `provision:<id>` job, due only in 5 to 15 minutes so that the test decides when it runs.
    const { url, child } = await startServer({
      DATABASE_URL: centralUrl,
      REGISTRATION_MODE: 'hybrid',
      FAULT_INJECTION: 'dns',
      PROVISIONING_RETRY_BASE_MS: '600000',
      SMTP_URL: sink.url,
    });
    const email = 'crash-held-1@example.com';
    const answer = await (
      await register(url, {
        clinicName: 'Crash held 1',
        country: 'FR',
        adminEmail: email,
        adminPassword: 'a sturdy passphrase 42',
        adminFirstName: 'Kill',
        adminLastName: 'Nine',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      })
    ).json();
    expect(answer).toEqual({ data: { registerClinic: { __typename: 'RegisterClinicSuccess' } } });
    const [clinic] = (await snapshot(centralUrl)).clinics;
    expect(clinic?.status).toBe('PENDING');
    const key = `provision:${clinic?.id}`;
    // The job's state at each point, for the failure message.
    const timeline: string[] = [];
    const theJob = () =>
      withClient(centralUrl, async (client) => {
        const { rows } = await client.query<{
          locked_by: string | null;
          attempts: number;
          max_attempts: number;
          registration_attempt: number;
          due_in: string;
          last_error: string | null;
        }>(
          // The payload is only in graphile-worker's table (its `jobs` view leaves it out).
          `SELECT locked_by, attempts, max_attempts, (payload->>'attempt')::int AS registration_attempt,
                  round(extract(epoch FROM run_at - now()), 1)::text AS due_in, last_error
             FROM graphile_worker._private_jobs WHERE key = $1`,
          [key],
        );
        return rows[0];
      });
    const note = async (at: string) => {
      timeline.push(`${at}: ${JSON.stringify((await theJob()) ?? 'no job')}`);
      return timeline.join('\n');
    };
    await note('suspended');
    expect(await theJob()).toMatchObject({ locked_by: null, attempts: 0, max_attempts: 1 });

    // The job held at its first statement (continueRegistration reads `clinics`): the test locks
    // the table, then makes the job due and wakes the child's workers.
    const blocker = await lockTable(centralUrl, 'clinics');
    await withClient(centralUrl, async (client) => {
      await client.query(
        `SELECT graphile_worker.reschedule_jobs(ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = $1), run_at := now())`,
        [key],
      );
      await client.query(`SELECT pg_notify('jobs:insert', '{"count":1}')`);
    });
    await waitFor(
      "the child's worker to hold the job, blocked on the table",
      async () => ((await theJob())?.locked_by ? await waitersOnLock(centralUrl, blocker) : 0),
      (n) => n > 0,
      { budgetMs: 60_000, intervalMs: 50, pending: () => note('not held yet') },
    );
    await note('held by the child');
    await killWhileHeld(child, blocker, centralUrl, 'held');
    // What the kill left: the job locked by a dead worker, its only attempt taken.
    expect(await theJob(), await note('after the kill')).toMatchObject({ attempts: 1, max_attempts: 1 });
    expect((await theJob())?.locked_by).toBeTruthy();
    expect(sink.messages.filter((message) => JSON.stringify(message.to ?? '').includes(email))).toEqual([]);

    const after = await startSurvivor(centralUrl, { REGISTRATION_MODE: 'hybrid', SMTP_URL: sink.url });
    const startedAt = Date.now();
    const { prisma } = after.app.deps.db;
    // Each change of the clinic's status or of its job's lock and attempts goes in the timeline.
    let last = '';
    await waitFor(
      'the clinic READY',
      async () => {
        const { status } = await prisma.clinic.findUniqueOrThrow({ where: { id: clinic?.id } });
        const job = await theJob();
        const now = `${status} ${job?.locked_by ? 'locked' : 'unlocked'} ${job?.attempts ?? 'gone'}`;
        if (now !== last) await note(`survivor at ${Date.now() - startedAt} ms, clinic ${status}`);
        last = now;
        return status;
      },
      (status) => status === 'READY',
      {
        budgetMs: 60_000,
        intervalMs: 100,
        pending: async () => `${await note('gave up')}
${await describeRuns(centralUrl)}`,
      },
    );
    console.info(`clinic READY ${Date.now() - startedAt} ms after the survivor started`);
    expect(Date.now() - startedAt).toBeLessThan(60_000);
    expect(await theJob(), timeline.join('\n')).toBeUndefined();

    // The verification mail, exactly once: delivered, recorded SENT, and nothing left to send it again.
    await sink.waitFor((message) => JSON.stringify(message.to ?? '').includes(email), 20_000);
    await after.app.deps.committedMail.idle();
    expect(await after.app.deps.committedMail.requeueUnsent()).toBe(0);
    const mail = await prisma.mailOutbox.findFirstOrThrow({
      where: { toAddress: email, kind: 'email_verification' },
      select: { status: true, attempts: true },
    });
    expect(mail).toEqual({ status: 'SENT', attempts: 1 });
    expect(sink.messages.filter((message) => JSON.stringify(message.to ?? '').includes(email))).toHaveLength(
      1,
    );

    // No orphan: the clinic's own database and role exist and are healthy, and nothing else of it.
    expect(await after.app.deps.reconciler.zombieReport()).toMatchObject({ accounts: [], orphans: [] });
    expect((await after.app.deps.provisioning.checkClinic(clinic?.id as string)).dbStatus).toBe('HEALTHY');
    const server = await withClient(admin, async (client) => {
      const { rows } = await client.query<{ name: string }>(
        "SELECT datname AS name FROM pg_database WHERE datname LIKE 'clinic\\_crash\\_held\\_%' ORDER BY 1",
      );
      return rows.map((row) => row.name);
    });
    expect(server).toEqual([clinic?.database_name]);
    expect(await after.app.deps.provisioning.ledger.quarantined()).toEqual([]);
  }, 240_000);
});
