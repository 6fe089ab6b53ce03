/**
 * Background jobs on graphile-worker, in the central PostgreSQL: a job can be enqueued in the
 * same transaction as the rows it works on, so it exists exactly when they do.
 * Payloads are typed by task name; every handler must be safe to run twice.
 */

import { EventEmitter } from 'node:events';
import {
  type Runner,
  type RunnerOptions,
  run,
  runMigrations,
  type Task,
  type TaskList,
  Logger as WorkerLogger,
} from 'graphile-worker';
import pg from 'pg';
import type { CentralPrisma } from '../db/database.js';
import { execute, queryRows, type RawWriteDb } from '../db/raw.js';
import { probedConnection } from '../db/sql.js';
import { Prisma } from '../generated/central/client.js';
import type { Logger } from '../logger.js';

export interface TaskPayloads {
  /** Deliver one mail_outbox row. */
  send_email: { outboxId: string };
  /** Finish (or give up on) a hybrid-mode registration. */
  provision_clinic: { clinicId: string; attempt: number };
  /** Drop what sat in quarantine past its retention (docs/decisions/040). */
  purge_quarantine: Record<string, never>;
  /** Attempt one webhook_deliveries row (modules/webhooks). */
  deliver_webhook: { deliveryId: string };
  /**
   * Release the DNS records and certificates of a revoked application's pending onboardings
   * (modules/onboarding, docs/decisions/096).
   */
  release_onboarding_names: { applicationId: string };
}

/** The purge job's key and queue: at most one waits, and two never run at once, in the cluster. */
export const PURGE_JOB = 'purge_quarantine';

/**
 * Recurring jobs. graphile-worker records each tick in `known_crontabs`, so however many
 * instances run it is enqueued once per tick. The hourly purge is the safety net of the one
 * scheduled for the retention's end (provisioning/ledger.ts `schedulePurge`): a server that was
 * unreachable then, a job lost with a restored backup.
 */
export const CRONTAB = `0 * * * * ${PURGE_JOB} ?jobKey=${PURGE_JOB}&queue=${PURGE_JOB}&max=3`;

export type TaskName = keyof TaskPayloads;

export type TaskHandlers = { [T in TaskName]: (payload: TaskPayloads[T]) => Promise<void> };

export interface AddJobOptions {
  runAt?: Date;
  /** graphile-worker retries a throwing handler with exponential backoff up to this. @default 10 */
  maxAttempts?: number;
  /** At most one pending job per key: adding again replaces it. */
  jobKey?: string;
  /** Jobs of one named queue run one at a time. */
  queueName?: string;
}

/**
 * Anything that can run a raw statement: a Prisma client or interactive transaction, or a step's
 * pg transaction (db/raw.ts).
 */
export type RawExecutor = RawWriteDb;

export async function addJob<T extends TaskName>(
  db: RawExecutor,
  task: T,
  payload: TaskPayloads[T],
  options: AddJobOptions = {},
): Promise<void> {
  await execute(
    db,
    Prisma.sql`SELECT graphile_worker.add_job(
      ${task}::text,
      ${JSON.stringify(payload)}::json,
      run_at => ${options.runAt ?? null}::timestamptz,
      max_attempts => ${options.maxAttempts ?? 10}::int,
      job_key => ${options.jobKey ?? null}::text,
      queue_name => ${options.queueName ?? null}::text
    )`,
  );
}

/**
 * What adding a job whose key already has one does (graphile-worker's `job_key_mode`):
 * - `replace`: a pending job is replaced (payload, run_at); a running one loses its key and a new
 *   job is added beside it.
 * - `unsafe_dedupe`: nothing, whatever the existing job's state (running included), and no NOTIFY.
 *   Only for a job that reads the state it works on when it runs, so that one already running
 *   or pending does what a second would (the mail safety net, modules/mail/after-commit.ts).
 */
export type JobKeyMode = 'replace' | 'unsafe_dedupe';

/**
 * `graphile_worker.add_job(...)` as a fragment of a larger statement, for a job whose payload is
 * computed by that statement (e.g. the id a CTE just inserted): each payload field is an SQL
 * expression, typed by the task's payload. Evaluates to the job row (never null).
 */
export function addJobSql<T extends TaskName>(
  task: T,
  payload: { [K in keyof TaskPayloads[T]]: Prisma.Sql },
  options: Omit<AddJobOptions, 'jobKey'> & { jobKey?: Prisma.Sql; jobKeyMode?: JobKeyMode } = {},
): Prisma.Sql {
  const fields = Object.entries(payload as Record<string, Prisma.Sql>).map(
    ([name, value]) => Prisma.sql`${name}::text, ${value}`,
  );
  return Prisma.sql`graphile_worker.add_job(
    ${task}::text,
    json_build_object(${Prisma.join(fields)}),
    run_at => ${options.runAt ?? null}::timestamptz,
    max_attempts => ${options.maxAttempts ?? 10}::int,
    job_key => ${options.jobKey ?? Prisma.sql`NULL`}::text,
    job_key_mode => ${options.jobKeyMode ?? 'replace'}::text
  )`;
}

/** Anything that can run a raw query: a Prisma client or interactive transaction. */
export interface RawQuerier {
  $queryRaw<R>(query: TemplateStringsArray | Prisma.Sql, ...values: unknown[]): Promise<R>;
}

/** Removes the pending job of `key`, if any (a job that is running finishes). */
export async function removeJob(db: RawExecutor, key: string): Promise<void> {
  await execute(db, Prisma.sql`SELECT graphile_worker.remove_job(${key}::text)`);
}

/** Makes the job of `key` due now, unless a worker holds it. @returns how many were rescheduled */
export async function runJobNow(db: RawQuerier, key: string): Promise<number> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    SELECT id::text FROM graphile_worker.reschedule_jobs(
      ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = ${key}), run_at := now())`;
  return rows.length;
}

/** Whether a job of `key` is pending or running. */
export async function jobExists(db: RawQuerier, key: string): Promise<boolean> {
  const rows = await db.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE key = ${key}`;
  return (rows[0]?.n ?? 0) > 0;
}

/** Whether a pending or running job has the key `key` (an SQL expression), as SQL. */
export function jobKeyExistsSql(key: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`EXISTS (SELECT 1 FROM graphile_worker.jobs j WHERE j.key = ${key})`;
}

/** The keys of pending or running jobs that start with `prefix`. */
export async function jobKeys(db: RawQuerier, prefix: string): Promise<string[]> {
  const rows = await db.$queryRaw<{ key: string }[]>`
    SELECT key FROM graphile_worker.jobs WHERE starts_with(key, ${prefix})`;
  return rows.map((row) => row.key);
}

/**
 * The keys starting with `prefix` of jobs failed for good: no attempt left and not running (kept
 * by graphile-worker, e.g. by decision 084), with the reason they failed.
 */
export async function failedJobs(
  db: RawQuerier,
  prefix: string,
): Promise<{ key: string; lastError: string | null }[]> {
  return db.$queryRaw<{ key: string; lastError: string | null }[]>`
    SELECT key, last_error AS "lastError" FROM graphile_worker.jobs
     WHERE starts_with(key, ${prefix}) AND attempts >= max_attempts AND locked_at IS NULL`;
}

/** Which of `keys` have a pending or running job. */
export async function pendingJobKeys(db: RawQuerier, keys: string[]): Promise<string[]> {
  const rows = await db.$queryRaw<{ key: string }[]>`
    SELECT key FROM graphile_worker.jobs WHERE key = ANY(${keys})`;
  return rows.map((row) => row.key);
}

/** Installs or upgrades graphile-worker's own schema (idempotent, concurrency-safe). */
export async function installJobSchema(connectionString: string, logger: Logger): Promise<void> {
  await runMigrations({ connectionString, logger: workerLogger(logger) });
}

export interface Worker {
  stop(): Promise<void>;
}

export interface StartWorkerOptions {
  connectionString: string;
  /**
   * This process's id, unique in the cluster: its worker connections carry it in their
   * application_name, and `job_workers` maps its workers to it (docs/decisions/082).
   */
  instanceId: string;
  logger: Logger;
  handlers: TaskHandlers;
  /** @default 4 */
  concurrency?: number;
  /** Milliseconds between polls when LISTEN misses a job. @default 2000 */
  pollInterval?: number;
  /** Recurring jobs, in graphile-worker's crontab format. @default CRONTAB */
  crontab?: string;
}

export async function startWorker(options: StartWorkerOptions): Promise<Worker> {
  const taskList: TaskList = {};
  for (const [name, handler] of Object.entries(options.handlers)) {
    taskList[name] = (async (payload: unknown) => {
      await (handler as (payload: unknown) => Promise<void>)(payload);
    }) satisfies Task;
  }
  // Our own pool, so that a connection dropped while idle (a restart, pg_terminate_backend) is
  // logged instead of surfacing as an uncaught 'error' event once the runner stops listening.
  // Its application_name is the instance's liveness signal (releaseDeadWorkers): the runner
  // holds one connection for LISTEN as long as the process lives. PostgreSQL probes them, so that
  // a host that vanished without closing them loses them, and its locks, in about 25 s rather than
  // TCP's 2 hours (decision 092); a live host's kernel answers the probes, however busy the process.
  const pgPool = new GatedPool({
    ...probedConnection(options.connectionString),
    max: (options.concurrency ?? 4) + 2,
    application_name: workerApplicationName(options.instanceId),
  });
  const lost = (error: Error) => options.logger.warn({ err: error }, 'job-worker connection lost');
  pgPool.on('error', lost);
  pgPool.on('connect', (client) => client.on('error', lost));
  // The worker pool's id, which graphile-worker 0.17 locks jobs with (`locked_by`: the pool's,
  // not each worker's), is recorded as the pool is created; its workers fetch right after that
  // event, so the pool's connections wait for the row's commit (GatedPool): a kill in between
  // leaves no job locked by a pool nobody knows of, which only the 4-hour reset would free
  // (decision 082). A pool that cannot be recorded never fetches: startWorker fails.
  const poolIds: string[] = [];
  const recorded: Promise<void>[] = [];
  const events = new EventEmitter() as NonNullable<RunnerOptions['events']>;
  events.on('pool:create', ({ workerPool }) => {
    poolIds.push(workerPool.id);
    const recording = recordPool(pgPool, workerPool.id, options);
    pgPool.gate(recording);
    recorded.push(recording);
  });
  const runner: Runner = await run({
    pgPool,
    concurrency: options.concurrency ?? 4,
    pollInterval: options.pollInterval ?? 2000,
    noHandleSignals: true,
    taskList,
    crontab: options.crontab ?? CRONTAB,
    logger: workerLogger(options.logger),
    events,
  });
  try {
    await Promise.all(recorded);
  } catch (error) {
    await runner.stop().catch(() => {});
    await pgPool.end().catch(() => {});
    throw error;
  }
  return {
    async stop() {
      await runner.stop();
      // A stopped pool holds nothing: its row is not for a survivor to look at.
      await pgPool
        .query('DELETE FROM job_workers WHERE worker_id = ANY($1)', [poolIds])
        .catch((error: unknown) => options.logger.warn({ err: error }, 'job workers not forgotten'));
      await pgPool.end();
    },
  };
}

/** Attempts at recording a worker pool before startWorker gives up, a second apart. */
const RECORD_ATTEMPTS = 3;

/** Inserts the pool's `job_workers` row, retried; its connection bypasses the gate it opens. */
async function recordPool(pgPool: GatedPool, workerId: string, options: StartWorkerOptions): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      const client = await pgPool.connectUngated();
      // A client whose statement failed is dropped, not handed to a worker: it may be broken.
      await client
        .query('INSERT INTO job_workers (worker_id, instance) VALUES ($1, $2) ON CONFLICT DO NOTHING', [
          workerId,
          options.instanceId,
        ])
        .then(
          () => client.release(),
          (error: Error) => {
            client.release(error);
            throw error;
          },
        );
      return;
    } catch (error) {
      if (attempt >= RECORD_ATTEMPTS) {
        options.logger.error(
          { err: error, workerId, attempts: attempt },
          'job worker pool not recorded: not started',
        );
        throw error;
      }
      options.logger.warn({ err: error, workerId, attempt }, 'job worker pool not recorded yet: retrying');
      await new Promise((done) => setTimeout(done, 1000));
    }
  }
}

type ConnectCallback = (
  error: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/**
 * A pg.Pool whose connect() (and so query()) waits while a gate is open: graphile-worker gets its
 * every connection through it, so no worker of a pool can fetch a job before the pool's row is
 * committed, and none ever does if it never is. Nothing waits before the first gate (the
 * runner's migrations) nor once it has passed: no round trip per job.
 */
class GatedPool extends pg.Pool {
  #gate: Promise<void> | null = null;

  /** Connections asked for from now wait for `until`; they fail if it fails. */
  gate(until: Promise<void>): void {
    const gate = Promise.all([this.#gate, until]).then(() => {});
    gate.catch(() => {});
    this.#gate = gate;
    gate.then(
      () => {
        if (this.#gate === gate) this.#gate = null;
      },
      () => {},
    );
  }

  connectUngated(): Promise<pg.PoolClient> {
    return super.connect();
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | undefined {
    const gate = this.#gate;
    const connected = gate ? gate.then(() => super.connect()) : super.connect();
    if (!callback) return connected;
    connected.then(
      (client) =>
        callback(undefined, client, (release) => client.release(release as boolean | Error | undefined)),
      (error: Error) => callback(error, undefined, () => {}),
    );
    return undefined;
  }
}

const WORKER_APPLICATION = 'onramp-worker ';

/** Releases after which a job whose worker keeps dying while running it is failed for good (decision 084). */
export const MAX_RELEASES = 3;

/** The application_name of an instance's job-worker connections (at most 63 bytes: a uuid fits). */
export function workerApplicationName(instanceId: string): string {
  return `${WORKER_APPLICATION}${instanceId}`;
}

/** Whether `instance` (an SQL expression) has a job-worker connection to this database, as SQL. */
function instanceConnectedSql(instance: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`EXISTS (SELECT 1 FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.application_name = ${WORKER_APPLICATION} || ${instance})`;
}

export interface ReleaseDeadWorkersOptions {
  /**
   * How long an instance must have been seen without a job-worker connection, on an earlier pass,
   * before its workers' locks are released (a connection being re-established is not a death).
   * @default 10
   */
  goneForSeconds?: number;
}

/**
 * Unlocks the jobs (and named queues) locked by workers whose instance is gone, so that another
 * worker runs them now rather than once graphile-worker 0.17 resets locks 4 hours old
 * (docs/decisions/082). An instance is gone when it has no job-worker connection to the central
 * database (pg_stat_activity), on two passes at least `goneForSeconds` apart; a live worker's
 * lock is never released. Cheap enough for every instance's reconcile pass: when nobody died, a
 * transaction of one DELETE that finds nothing, then one UPDATE. @returns the jobs unlocked
 */
export async function releaseDeadWorkers(
  prisma: CentralPrisma,
  logger: Logger,
  options: ReleaseDeadWorkersOptions = {},
): Promise<number> {
  const seconds = options.goneForSeconds ?? 10;
  // Released first, marked after: a worker first seen gone by this pass waits for the next one.
  const released = await prisma.$transaction(async (tx) => {
    const dead = await queryRows<{ workerId: string; instance: string }>(
      tx,
      Prisma.sql`DELETE FROM job_workers w
        WHERE w.gone_since <= now() - make_interval(secs => ${seconds})
          AND NOT ${instanceConnectedSql(Prisma.sql`w.instance`)}
        RETURNING w.worker_id AS "workerId", w.instance`,
    );
    if (dead.length === 0) return null;
    const workerIds = dead.map((row) => row.workerId);
    const held = await queryRows<{ id: string; attempts: number; task: string }>(
      tx,
      Prisma.sql`SELECT id::text, attempts, task_identifier AS task FROM graphile_worker.jobs WHERE locked_by = ANY(${workerIds})`,
    );
    await execute(tx, Prisma.sql`SELECT graphile_worker.force_unlock_workers(${workerIds}::text[])`);
    let failed: { id: string; task: string }[] = [];
    if (held.length > 0) {
      // Each release is counted (decision 084). A job released MAX_RELEASES times is failed for
      // good and kept: a job that kills whatever runs it would otherwise take the instances down
      // one after another, each release handing it to the next.
      const counted = await queryRows<{ id: string; releases: number }>(
        tx,
        Prisma.sql`INSERT INTO job_releases (job_id, task, releases)
          SELECT h.id, h.task, 1 FROM unnest(${held.map((job) => job.id)}::bigint[], ${held.map((job) => job.task)}::text[]) AS h(id, task)
          ON CONFLICT (job_id) DO UPDATE SET releases = job_releases.releases + 1, last_released_at = now()
          RETURNING job_id::text AS id, releases`,
      );
      const releases = new Map(counted.map((row) => [row.id, row.releases]));
      const again = held.filter((job) => (releases.get(job.id) ?? 0) < MAX_RELEASES);
      failed = held.filter((job) => (releases.get(job.id) ?? 0) >= MAX_RELEASES);
      if (again.length > 0) {
        // The attempt the dead worker took is given back, as graphile-worker itself does for the
        // jobs of a pool that shuts down mid-run (returnJobs): a job on its last attempt, as every
        // provision_clinic job is (maxAttempts 1), would otherwise never be fetched again.
        await execute(
          tx,
          Prisma.sql`SELECT count(*) FROM unnest(${again.map((job) => job.id)}::bigint[], ${again.map((job) => job.attempts)}::int[]) AS h(id, attempts),
            LATERAL graphile_worker.reschedule_jobs(ARRAY[h.id], run_at := now(), attempts := GREATEST(h.attempts - 1, 0)) r`,
        );
        // What add_job sends: idle workers fetch at once instead of at their next poll.
        await execute(tx, Prisma.sql`SELECT pg_notify('jobs:insert', '{"count":-1}')`);
      }
      if (failed.length > 0) {
        await execute(
          tx,
          Prisma.sql`SELECT count(*) FROM graphile_worker.permanently_fail_jobs(${failed.map((job) => job.id)}::bigint[],
            ${`its worker's process died while running it ${MAX_RELEASES} times: not run again (decision 084)`})`,
        );
      }
      // The counts of jobs that have ended (done, or removed) are of no more use.
      await execute(
        tx,
        Prisma.sql`DELETE FROM job_releases r WHERE NOT EXISTS (SELECT 1 FROM graphile_worker.jobs j WHERE j.id = r.job_id)`,
      );
    }
    return {
      workerIds,
      instances: [...new Set(dead.map((row) => row.instance))],
      jobs: held.length,
      failed,
    };
  });
  if (released) {
    const { failed, ...unlocked } = released;
    logger.info(unlocked, 'unlocked the jobs of job workers whose instance is gone');
    if (failed.length > 0) {
      logger.error(
        { jobs: failed, releases: MAX_RELEASES },
        'jobs failed for good: their worker died while running each of them every time (run one again: docs/decisions/084)',
      );
    }
  }
  await execute(
    prisma,
    Prisma.sql`UPDATE job_workers w SET gone_since = CASE WHEN s.connected THEN NULL ELSE now() END
      FROM (SELECT j.worker_id, ${instanceConnectedSql(Prisma.sql`j.instance`)} AS connected FROM job_workers j) s
      WHERE s.worker_id = w.worker_id AND s.connected = (w.gone_since IS NOT NULL)`,
  );
  return released?.jobs ?? 0;
}

/** graphile-worker's logs through pino; payloads are never logged. */
function workerLogger(logger: Logger): WorkerLogger {
  const child = logger.child({ source: 'graphile-worker' });
  return new WorkerLogger(() => (level, message) => {
    if (level === 'error') child.error(message);
    else if (level === 'warning') child.warn(message);
    else if (level === 'info') child.debug(message);
    else child.trace(message);
  });
}
