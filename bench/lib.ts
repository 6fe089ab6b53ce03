/**
 * What a benchmark suite returns and the small helpers suites share. Speed and memory are judged
 * as ratios against a baseline measured side by side in the same run, never as absolute numbers:
 * a slow CI machine slows the baseline too.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type App, type BuildAppOptions, buildApp } from '../server/src/app.js';
import { ensureDatabase, openDatabases } from '../server/src/db/database.js';
import { type RunningPostgres, startEmbeddedPostgres } from '../server/src/db/embedded.js';
import { databaseUrl, withClient } from '../server/src/db/sql.js';
import { loadConfig } from '../server/src/env.js';
import { createLogger } from '../server/src/logger.js';
import { scratchRoot } from '../server/test/scratch.js';

/** Knobs handed to every suite (bench/run.ts reads them from the environment). */
export interface BenchOptions {
  /** Timed iterations per latency benchmark. */
  iterations: number;
  /** Clinic counts for the fleet benchmarks, ascending. */
  clinics: number[];
  /** Registrations of the registration burst (all clients together). */
  registrations: number;
  /** E-mail code sign-in flows per system in each round of the otp suite (all clients together). */
  otpFlows: number;
  /** Rows of the clinic the move suite moves. */
  moveRows: number;
  /** Progress lines (stderr), so stdout keeps only the table. */
  log(line: string): void;
}

export interface Target {
  op: '<=' | '>=';
  value: number;
  /** As printed, e.g. "≤ 0.50× raw". */
  text: string;
}

export interface Row {
  name: string;
  /** Number of samples (or of clinics, for fleet rows). */
  n: number;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  /** The compared quantity, in the terms of `target` (e.g. pool p50 ÷ raw p50). */
  ratio?: number;
  /** How the ratio is printed, e.g. "0.42× raw" or "27 / 19 backends". */
  ratioText?: string;
  target?: Target;
  /** Set by `judge` when the row has a target. */
  pass?: boolean;
  /** Raw samples, kept in the JSON only. */
  samplesMs?: number[];
}

export interface SuiteResult {
  rows: Row[];
  /** Free-form lines printed under the table (setup costs, caveats). */
  notes: string[];
  /** Anything worth keeping in the JSON (server version, settings). */
  meta: Record<string, unknown>;
}

export interface Suite {
  name: string;
  run(options: BenchOptions): Promise<SuiteResult>;
}

/** Nearest-rank percentile; `p` in [0, 100]. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1] as number;
}

export const median = (samples: readonly number[]) => percentile(samples, 50);

/** A latency row from samples. */
export function latencyRow(name: string, samplesMs: readonly number[], extra: Partial<Row> = {}): Row {
  return {
    name,
    n: samplesMs.length,
    p50Ms: percentile(samplesMs, 50),
    p95Ms: percentile(samplesMs, 95),
    p99Ms: percentile(samplesMs, 99),
    samplesMs: samplesMs.map((ms) => Math.round(ms * 100) / 100),
    ...extra,
  };
}

/** Sets `pass` from `ratio` and `target`. */
export function judge(row: Row): Row {
  if (!row.target || row.ratio === undefined) return row;
  const { op, value } = row.target;
  return { ...row, pass: op === '<=' ? row.ratio <= value : row.ratio >= value };
}

export async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

/** Runs `work` over `items`, at most `limit` at once (the server's own helper). */
export { mapLimit as inParallel } from '../server/src/concurrency.js';

/** The password every benchmark clinic admin registers with. */
export const BENCH_PASSWORD = 'a sturdy passphrase 42';

/** The `registerClinic` input a benchmark sends over HTTP: a French clinic, both documents accepted. */
export function registrationInput(clinicName: string, adminEmail: string) {
  return {
    clinicName,
    country: 'FR',
    adminEmail,
    adminPassword: BENCH_PASSWORD,
    adminFirstName: 'Ada',
    adminLastName: 'Lovelace',
    acceptedDocuments: [
      { document: 'TERMS', version: '2026-01' },
      { document: 'PRIVACY', version: '2026-01' },
    ],
  };
}

/** An admin session on the bench server (the type `withClient` hands out). */
export type Sql = Parameters<Parameters<typeof withClient>[1]>[0];

/** What a suite measures with: one throw-away PostgreSQL and the apps it starts on it. */
export interface BenchServer {
  /** Temporary folder (the cluster lives in `<tmp>/postgres`), removed afterwards. */
  tmp: string;
  serverUrl: string;
  /** The suite's own admin connection: raw clones, catalog lookups, backend sampling. */
  sql: Sql;
  /** Running apps, stopped whatever happens. */
  apps: Set<App>;
  /** Anything else a suite started (another server, a pool), closed before the apps stop. */
  closers: (() => Promise<void>)[];
}

/** A stream of JSON log lines (pino's destination). */
export type LogDestination = NonNullable<Parameters<typeof createLogger>[1]>;

export interface StartedApp {
  app: App;
  url: string;
}

/**
 * A real app on its own central database of the bench server, listening on a free port, its
 * warm pool full. `poolSize` undefined keeps the default; `env` adds or overrides variables.
 * Stopped with the server.
 */
export async function startBenchApp(
  server: Pick<BenchServer, 'serverUrl' | 'tmp' | 'apps'>,
  database: string,
  poolSize: number | undefined,
  env: Record<string, string> = {},
  options: Pick<BuildAppOptions, 'mailTransport'> & {
    /** Where the app's log lines go (default: stdout), e.g. to read them back; `LOG_LEVEL` in `env`. */
    logTo?: LogDestination;
  } = {},
): Promise<StartedApp> {
  await ensureDatabase(server.serverUrl, database);
  const config = loadConfig({
    ONRAMP_ENV: 'test',
    DATABASE_URL: databaseUrl(server.serverUrl, database),
    JWT_SECRET: 'x'.repeat(40),
    ENCRYPTION_KEY: '00'.repeat(32),
    REGISTRATION_MODE: 'strict',
    CLINIC_POOL_SIZE: poolSize === undefined ? undefined : String(poolSize),
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    LOG_LEVEL: 'error',
    // A benchmark registers hundreds of clinics from one address within the hour.
    REGISTRATION_IP_LIMIT: '1000000/1h',
    REGISTRATION_TOTAL_LIMIT: '1000000/1h',
    ONRAMP_DATA_DIR: join(server.tmp, 'data'),
    HOST: '127.0.0.1',
    PORT: '0',
    ...env,
  });
  const { logTo, ...appOptions } = options;
  const logger = createLogger(config, logTo);
  const db = await openDatabases(config, logger);
  let app: App;
  try {
    // A free DNS port: a suite runs several apps at once, and 5354 may be taken on the machine.
    app = await buildApp(
      { config, logger, db, startedAt: new Date() },
      { drainTimeoutMs: 1000, dnsPort: 0, ...appOptions },
    );
  } catch (error) {
    await db.close();
    throw error;
  }
  server.apps.add(app);
  const url = await app.start();
  await app.deps.provisioning.pool.idle();
  return { app, url };
}

/** Starts ONE embedded PostgreSQL, runs `measure`, then stops every app and the server. */
export async function withBenchServer<T>(
  options: BenchOptions,
  measure: (server: BenchServer) => Promise<T>,
  {
    clinicDatabases = 100,
  }: {
    /** How many clinic databases the suite makes at most, for its files' size. */ clinicDatabases?: number;
  } = {},
): Promise<T> {
  // On a tmpfs when it has room (docs/decisions/098): a clone on this machine's disk costs 8–19×
  // its tmpfs time after a run of drops, which made every ratio against a raw clone say nothing.
  const root = scratchRoot(2 ** 30 + clinicDatabases * CLINIC_DATABASE_BYTES);
  const tmp = mkdtempSync(join(root, 'onramp-bench-'));
  // As root PostgreSQL runs as `postgres`, which must be able to traverse the temp dir.
  if (process.getuid?.() === 0) chmodSync(tmp, 0o711);
  const logger = createLogger({ env: 'test', logLevel: 'error' });
  const apps = new Set<App>();
  const closers: (() => Promise<void>)[] = [];
  let server: RunningPostgres | undefined;
  try {
    options.log(`starting embedded PostgreSQL in ${root}`);
    server = await startEmbeddedPostgres({
      dir: join(tmp, 'postgres'),
      logger,
      ephemeral: true,
      maxConnections: 300,
    });
    const serverUrl = server.url;
    return await withClient(serverUrl, (sql) => measure({ tmp, serverUrl, sql, apps, closers }));
  } finally {
    for (const close of closers)
      await close().catch((error) => logger.error({ err: error }, 'bench resource close failed'));
    for (const app of apps)
      await app.stop().catch((error) => logger.error({ err: error }, 'app stop failed'));
    await server?.stop().catch((error) => logger.error({ err: error }, 'PostgreSQL stop failed'));
    // Removed by run.ts once the suite's results are out (removeBenchFiles): 2,000 clinic
    // databases are ~15 GB and ~600,000 files, which take minutes to delete on this disk.
    pendingRemovals.push(tmp);
  }
}

/** A clinic database's files with their share of the WAL: the 7.9 MB template and some. */
const CLINIC_DATABASE_BYTES = 12 * 2 ** 20;

const pendingRemovals: string[] = [];

/**
 * Deletes the folders of the throw-away servers the suites run so far started. A whole cluster's
 * files go at once: a fleet's databases are never dropped one by one, which costs a checkpoint
 * each (2,000 took 40 minutes here).
 */
export function removeBenchFiles(log: (line: string) => void): void {
  for (const dir of pendingRemovals.splice(0)) {
    const started = performance.now();
    rmSync(dir, { recursive: true, force: true });
    const seconds = (performance.now() - started) / 1000;
    if (seconds >= 1) log(`removed ${dir} in ${seconds.toFixed(0)} s`);
  }
}

/**
 * Polls `probe` every `intervalMs` until stopped; `stop()` resolves with the highest value seen.
 * Polls never overlap, so a slow probe lowers the rate instead of piling up.
 */
export function samplePeak(probe: () => Promise<number>, intervalMs: number): { stop(): Promise<number> } {
  let peak = Number.NEGATIVE_INFINITY;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await probe());
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

/**
 * A full garbage collection, when one can be had: `global.gc` under --expose-gc, otherwise the
 * same function taken from a fresh V8 context after enabling the flag at run time.
 * @returns whether a collection ran.
 */
export function collectGarbage(): boolean {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    try {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    } catch {
      return false;
    }
  }
  gc();
  return true;
}

/** Resident set size after letting timers settle and collecting garbage. */
export async function settledRss(): Promise<{ bytes: number; collected: boolean }> {
  await sleep(200);
  const collected = collectGarbage();
  collectGarbage();
  await sleep(50);
  return { bytes: process.memoryUsage().rss, collected };
}

/** Milliseconds with as many decimals as are meaningful. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return Math.round(ms).toString();
}

export const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;
