/**
 * Registration benchmark, on one throw-away embedded PostgreSQL:
 *
 *   baseline    raw `CREATE DATABASE … TEMPLATE <clinic template>` and one argon2id hash
 *   burst       `registerClinic` over real HTTP, 8 clients at once, strict mode, dev mailbox
 *   side query  `{ health { status } }` from one more client, idle and during the burst
 *
 * The app is the real one (buildApp, 127.0.0.1, port 0) with CLINIC_POOL_SIZE at its default;
 * the same burst then runs against an app without a warm pool. See bench/README.md.
 */
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { App } from '../server/src/app.js';
import { quoteIdent } from '../server/src/db/sql.js';
import { HASH_CONCURRENCY, hashPassword } from '../server/src/modules/auth/passwords.js';
import { pgCpuDelta, postgresCpu, readPostmasterPid, systemCpu } from './cpu.js';
import {
  BENCH_PASSWORD,
  type BenchOptions,
  formatMs,
  inParallel,
  judge,
  latencyRow,
  median,
  percentile,
  type Row,
  registrationInput,
  type Sql,
  type StartedApp,
  type Suite,
  type SuiteResult,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

/** Concurrent HTTP clients of the burst, each registering one clinic after another. */
const CLIENTS = 8;
/** hashPassword() calls timed one after another (after one untimed). */
const HASH_RUNS = 10;
/** Hashes timed two at a time, to see what two cores really give. */
const HASH_PAIR_RUNS = 20;
/** `{ health { status } }` requests timed on the idle app. */
const IDLE_QUERIES = 200;
/** The throughput target assumes hashing on this many cores is the only limit. */
const HASH_CORES = 2;
/** Registrations of the one-client phase, each after the warm pool is full again. */
const SEQUENTIAL = 16;
/** How often pg_stat_activity is sampled during the burst. */
const ACTIVITY_SAMPLE_MS = 20;

// The 8-client burst's latency is information, not judged against one sequential clone: by
// Little's law it is 8 ÷ throughput, which no clone-sized target can bound (bench/README.md).
const TARGETS = {
  throughputVsHash: { op: '>=', value: 0.8, text: `≥ 0.80× ${HASH_CORES}÷hash` },
  healthDuringBurst: { op: '<=', value: 2, text: '≤ 2.00× idle p99' },
} as const;

export const registration: Suite = { name: 'registration', run };

interface Bench {
  options: BenchOptions;
  tmp: string;
  serverUrl: string;
  /** For reading PostgreSQL's CPU time from /proc (Linux). */
  postmasterPid: number | undefined;
  sql: Sql;
  apps: Set<App>;
}

const REGISTER = `mutation Register($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { status clinic { id } }
    ... on Error { message }
    ... on ProvisioningFailedError { step runId }
  }
}`;
const HEALTH = '{ health { status } }';

interface RegisterPayload {
  __typename: string;
  status?: string;
  clinic?: { id: string };
  message?: string;
  step?: string;
}

/** One registerClinic over HTTP, as the client saw it (epoch ms for lining up with the database). */
interface Attempt {
  sentAt: number;
  receivedAt: number;
  ms: number;
  clinicId?: string;
  /** Set when the answer was not RegisterClinicSuccess with status READY. */
  failure?: string;
}

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(options, (server) =>
    measure({
      options,
      ...server,
      postmasterPid: readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid')),
    }),
  );
}

async function measure(bench: Bench): Promise<SuiteResult> {
  const { options, sql } = bench;
  options.log('starting the app (CLINIC_POOL_SIZE at its default)');
  const pooled = await startBenchApp(bench, 'bench_central_registration', undefined);
  const poolSize = pooled.app.deps.config.clinicPoolSize;
  const [clinicServer] = pooled.app.deps.db.clinicServers;
  if (!clinicServer) throw new Error('no clinic database server');
  const template = clinicServer.template.name;

  options.log(`argon2: ${HASH_RUNS} hashes one by one, ${HASH_PAIR_RUNS} two at a time`);
  const hash = await measureHashing();
  options.log(`raw clone: ${options.registrations} × CREATE DATABASE … TEMPLATE`);
  const rawCpuBefore = postgresCpu(bench.postmasterPid);
  const rawTimed = await timed(() => measureRawClones(sql, template, options.registrations));
  const raw = rawTimed.value;
  // PostgreSQL's CPU per raw clone (its DROP and the untimed first included: an upper bound).
  const rawCpu = pgCpuDelta(rawCpuBefore, postgresCpu(bench.postmasterPid), rawTimed.ms);
  const rawCloneCpuMs = rawCpu ? (rawCpu.total * rawTimed.ms) / (options.registrations + 1) : undefined;
  const rawP50 = median(raw);
  const hashS = median(hash.one) / 1000;
  const ceiling = HASH_CORES / hashS;

  const variants: Variant[] = [];
  variants.push(await measureVariant(bench, pooled, `pool ${poolSize}`));
  const sequential = await measureSequential(bench, pooled, `pool ${poolSize}`);
  bench.apps.delete(pooled.app);
  await pooled.app.stop();
  options.log('starting the app without a warm pool');
  const plain = await startBenchApp(bench, 'bench_central_registration_no_pool', 0);
  variants.push(await measureVariant(bench, plain, 'no pool'));

  const rows: Row[] = [
    latencyRow('raw: CREATE DATABASE … TEMPLATE', raw, { ratio: 1, ratioText: 'baseline' }),
    latencyRow('argon2: hashPassword, one at a time', hash.one, {
      ratioText: `2÷hash = ${ceiling.toFixed(1)}/s`,
    }),
    latencyRow(`argon2: hashPassword, ${HASH_CORES} at a time`, hash.pair.samples, {
      ratioText: `${hash.pair.rate.toFixed(1)}/s = ${(hash.pair.rate / (1000 / median(hash.one))).toFixed(2)}× one`,
    }),
  ];
  const notes = [
    `PostgreSQL ${(await sql.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version}, ` +
      `template ${template} (${await databaseSize(sql, template)}); ${cpus().length} CPUs, HASH_CONCURRENCY ${HASH_CONCURRENCY} ` +
      `(availableParallelism ${availableParallelism()}), UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}.`,
    `Burst: ${options.registrations} registerClinic calls from ${CLIENTS} HTTP clients (each one call after ` +
      `another), strict mode, dev mailbox, after 1 untimed registration; the health client loops during it. ` +
      `Targets are judged on the default app (pool ${poolSize}); the no-pool rows are information.`,
  ];
  for (const variant of variants) {
    const judged = variant.label !== 'no pool';
    rows.push(...variantRows(variant, rawP50, ceiling, judged));
    notes.push(...variant.notes);
  }
  rows.push(...sequentialRows(sequential, rawP50, rawCloneCpuMs, median(hash.one)));
  notes.push(
    `One client: ${SEQUENTIAL} registerClinic calls one after another, each once the warm pool is full ` +
      'again; CPU (this process + PostgreSQL, /proc) and statements and commits on the central database ' +
      'are counted over all of it, refills and background work included (the exact figure of one ' +
      'registration is server/src/modules/registration/round-trips.test.ts). ' +
      `Raw clone CPU ${rawCloneCpuMs === undefined ? '?' : formatMs(rawCloneCpuMs)} ms (PostgreSQL, clone + drop).`,
  );
  return {
    rows,
    notes,
    meta: {
      template,
      clients: CLIENTS,
      registrations: options.registrations,
      hashConcurrency: HASH_CONCURRENCY,
      hashCores: HASH_CORES,
      hashMedianMs: median(hash.one),
      hashPairRatePerSecond: hash.pair.rate,
      rawP50Ms: rawP50,
      rawCloneCpuMs,
      sequential: {
        samplesMs: sequential.samples.map((ms) => Math.round(ms * 100) / 100),
        cpuMsPerRegistration: sequential.cpuMs,
        statementsPerRegistration: sequential.statements,
        commitsPerRegistration: sequential.commits,
      },
      variants: variants.map((variant) => ({
        label: variant.label,
        poolSize: variant.poolSize,
        burstMs: Math.round(variant.burstMs),
        throughputPerSecond: variant.throughput,
        failures: variant.failures,
        healthIdleP99Ms: percentile(variant.healthIdle, 99),
        healthBurstP99Ms: percentile(variant.healthBurst, 99),
        ...variant.meta,
      })),
    },
  };
}

async function measureHashing() {
  await hashPassword(BENCH_PASSWORD);
  const one: number[] = [];
  for (let i = 0; i < HASH_RUNS; i++) one.push((await timed(() => hashPassword(BENCH_PASSWORD))).ms);
  const samples: number[] = [];
  const burst = await timed(() =>
    inParallel(Array.from({ length: HASH_PAIR_RUNS }), HASH_CORES, async () => {
      samples.push((await timed(() => hashPassword(BENCH_PASSWORD))).ms);
    }),
  );
  return { one, pair: { samples, rate: (HASH_PAIR_RUNS / burst.ms) * 1000 } };
}

async function measureRawClones(sql: Sql, template: string, count: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i <= count; i++) {
    const name = `bench_raw_${i}`;
    const clone = await timed(() =>
      sql.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`),
    );
    await sql.query(`DROP DATABASE ${quoteIdent(name)}`);
    if (i > 0) samples.push(clone.ms); // the first is a warm-up
  }
  return samples;
}

interface Variant {
  label: string;
  poolSize: number;
  attempts: Attempt[];
  burstMs: number;
  throughput: number;
  failures: string[];
  healthIdle: number[];
  healthBurst: number[];
  /** Per successful registration: before the saga, the saga, each step, its bookkeeping, after. */
  phases: Map<string, number[]>;
  notes: string[];
  meta: Record<string, unknown>;
}

let registered = 0;

/** Warm-up, idle health queries, then the burst with the health client looping beside it. */
async function measureVariant(bench: Bench, started: StartedApp, label: string): Promise<Variant> {
  const { options } = bench;
  const { app, url } = started;
  const total = options.registrations;

  options.log(`${label}: warm-up registration and ${IDLE_QUERIES} idle health queries`);
  const warm = await register(url, label);
  if (warm.failure) throw new Error(`${label}: warm-up registration failed: ${warm.failure}`);
  await app.deps.provisioning.pool.idle();
  for (let i = 0; i < 20; i++) await healthQuery(url);
  const healthIdle: number[] = [];
  for (let i = 0; i < IDLE_QUERIES; i++) healthIdle.push(await healthQuery(url));

  options.log(`${label}: ${total} registrations from ${CLIENTS} clients`);
  const events = watchCreateDatabase(app);
  const counters = await serverCounters(bench.sql);
  const activity = sampleActivity(bench.sql);
  const healthBurst: number[] = [];
  let bursting = true;
  const healthLoop = (async () => {
    while (bursting) healthBurst.push(await healthQuery(url));
  })();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const cpuBefore = process.cpuUsage();
  const systemBefore = systemCpu();
  const pgBefore = postgresCpu(bench.postmasterPid);
  const burst = await timed(() =>
    inParallel(Array.from({ length: total }), CLIENTS, () => register(url, label)),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const systemAfter = systemCpu();
  const pgAfter = postgresCpu(bench.postmasterPid);
  loop.disable();
  bursting = false;
  await healthLoop;
  const waits = await activity.stop();
  const refillStarted = performance.now();
  await app.deps.provisioning.pool.idle();
  const refillTailMs = performance.now() - refillStarted;
  await sleep(300); // the last events come back through LISTEN
  const sources = events.stop();
  // Counted over the burst and its refill tail, per registration (the health loop's share is small).
  const after = await serverCounters(bench.sql);
  const perRegistration = {
    sessions: (after.sessions - counters.sessions) / total,
    commits: (after.commits - counters.commits) / total,
  };

  const attempts = burst.value;
  const failures = attempts.flatMap((attempt) => (attempt.failure ? [attempt.failure] : []));
  const succeeded = attempts.filter((attempt) => !attempt.failure && attempt.clinicId);
  const throughput = (succeeded.length / burst.ms) * 1000;
  const phases = await breakdown(app, succeeded);

  const nodeCores = (cpu.user + cpu.system) / 1000 / burst.ms;
  const systemCores =
    systemBefore && systemAfter
      ? ((systemAfter.busy - systemBefore.busy) / (systemAfter.total - systemBefore.total)) * cpus().length
      : undefined;
  const pgCores = pgCpuDelta(pgBefore, pgAfter, burst.ms);
  const notes = [
    `${label}: ${succeeded.length}/${total} READY in ${(burst.ms / 1000).toFixed(2)} s ` +
      `(${throughput.toFixed(1)}/s)` +
      (failures.length > 0 ? `, ${failures.length} FAILED:` : '.'),
    ...[...new Set(failures)].slice(0, 5).map((failure) => `    ${failure}`),
    `${label}: CPU during the burst, in cores: this process (app + clients + argon2 threads) ` +
      `${nodeCores.toFixed(2)}` +
      (pgCores ? `, PostgreSQL ${pgCores.total.toFixed(2)}` : '') +
      (systemCores === undefined
        ? ''
        : `, other processes ${(systemCores - nodeCores - (pgCores?.total ?? 0)).toFixed(2)}; ` +
          `whole machine ${systemCores.toFixed(2)} of ${cpus().length}`) +
      `. Event-loop delay p99 ${formatMs(loop.percentile(99) / 1e6)} ms, max ${formatMs(loop.max / 1e6)} ms.`,
    ...(pgCores
      ? [
          `${label}: PostgreSQL's cores by process: ` +
            [...pgCores.parts]
              .sort((a, b) => b[1] - a[1])
              .map(([part, cores]) => `${part} ${cores.toFixed(2)}`)
              .join(', ') +
            '.',
        ]
      : []),
    `${label}: create_database ${describeSources(sources)}; ` +
      `pool refill still running ${formatMs(refillTailMs)} ms after the burst.`,
    `${label}: per registration the server saw ${perRegistration.sessions.toFixed(1)} new sessions and ` +
      `${perRegistration.commits.toFixed(1)} commits (pg_stat_database, burst + refill, health loop included).`,
    `${label}: active PostgreSQL backends, sampled every ${ACTIVITY_SAMPLE_MS} ms (${waits.samples} samples, ` +
      `mean ${(waits.backendSamples / Math.max(1, waits.samples)).toFixed(1)} active, peak ${waits.peak}); ` +
      `share of backend samples: ${top(waits.byWait, waits.backendSamples)}.`,
    `${label}: … by statement: ${top(waits.byQuery, waits.backendSamples)}.`,
    `${label}: health queries during the burst: ${healthBurst.length}.`,
  ];
  return {
    label,
    poolSize: app.deps.config.clinicPoolSize,
    attempts,
    burstMs: burst.ms,
    throughput,
    failures,
    healthIdle,
    healthBurst,
    phases,
    notes,
    meta: {
      succeeded: succeeded.length,
      nodeCores,
      systemCores,
      postgresCores: pgCores && { total: pgCores.total, ...Object.fromEntries(pgCores.parts) },
      eventLoopDelayP99Ms: loop.percentile(99) / 1e6,
      createDatabase: Object.fromEntries(sources),
      refillTailMs,
      perRegistration,
      activity: {
        samples: waits.samples,
        peak: waits.peak,
        byWait: Object.fromEntries(waits.byWait),
        byQuery: Object.fromEntries(waits.byQuery),
      },
      registrationSamplesMs: attempts.map((attempt) => Math.round(attempt.ms * 100) / 100),
    },
  };
}

interface Sequential {
  label: string;
  samples: number[];
  /** Per registration: CPU of this process and PostgreSQL, ms (undefined without /proc). */
  cpuMs: number | undefined;
  statements: number;
  commits: number;
  /** Where the time went, as the burst's rows (before saga, each step, after saga). */
  phases: Map<string, number[]>;
}

/**
 * One client, pool warm: each registration waits for the warm pool to be full again, so every
 * one claims a spare. Statements are counted on the pg clients of the central database (this
 * process is the app), commits from pg_stat_database.
 */
async function measureSequential(bench: Bench, started: StartedApp, label: string): Promise<Sequential> {
  const { app, url } = started;
  bench.options.log(`${label}: ${SEQUENTIAL} registrations from one client, pool warm`);
  const central = new URL(app.deps.config.databaseUrl ?? '').pathname.slice(1);
  await app.deps.provisioning.pool.idle();
  const commitsBefore = await centralCommits(bench.sql, central);
  let statements = 0;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (this.database === central) statements += 1;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;
  const attempts: Attempt[] = [];
  const failures: string[] = [];
  const cpuBefore = process.cpuUsage();
  const pgBefore = postgresCpu(bench.postmasterPid);
  const wall = await timed(async () => {
    try {
      for (let i = 0; i < SEQUENTIAL; i++) {
        const attempt = await register(url, `${label} one`);
        if (attempt.failure) failures.push(attempt.failure);
        else attempts.push(attempt);
        await app.deps.provisioning.pool.idle();
      }
    } finally {
      pg.Client.prototype.query = original;
    }
  });
  const cpu = process.cpuUsage(cpuBefore);
  const pgCores = pgCpuDelta(pgBefore, postgresCpu(bench.postmasterPid), wall.ms);
  const commitsAfter = await centralCommits(bench.sql, central);
  if (failures.length > 0) throw new Error(`${label}: one-client registration failed: ${failures[0]}`);
  const nodeMs = (cpu.user + cpu.system) / 1000;
  return {
    label,
    samples: attempts.map((attempt) => attempt.ms),
    phases: await breakdown(app, attempts),
    cpuMs: pgCores ? (nodeMs + pgCores.total * wall.ms) / SEQUENTIAL : undefined,
    statements: statements / SEQUENTIAL,
    commits: (commitsAfter - commitsBefore) / SEQUENTIAL,
  };
}

function sequentialRows(
  sequential: Sequential,
  rawP50: number,
  rawCloneCpuMs: number | undefined,
  hashMs: number,
): Row[] {
  const { label, samples, cpuMs } = sequential;
  const vsRaw = median(samples) / rawP50;
  const budget = rawCloneCpuMs === undefined ? undefined : rawCloneCpuMs + hashMs;
  return [
    latencyRow(`${label}: registerClinic over HTTP, one client`, samples, {
      ratioText: `${vsRaw.toFixed(2)}× raw (issue 16: ≤ 2×)`,
    }),
    ...[...sequential.phases].map(([name, phase]) => latencyRow(`  ${label} one: ${name}`, phase)),
    {
      name: `${label}: CPU per registration, one client`,
      n: samples.length,
      ratioText:
        cpuMs === undefined || budget === undefined
          ? 'no /proc'
          : `${formatMs(cpuMs)} ms = ${(cpuMs / budget).toFixed(2)}× (clone CPU + hash; issue 16: ≤ 1.5×)`,
    },
    {
      name: `${label}: central statements / commits per registration`,
      n: samples.length,
      ratioText: `${sequential.statements.toFixed(1)} / ${sequential.commits.toFixed(1)} (refills, background included)`,
    },
  ];
}

/** Transactions committed on one database so far (stats flush within 1 s). */
async function centralCommits(sql: Sql, database: string): Promise<number> {
  await sleep(1100);
  await sql.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await sql.query<{ commits: number }>(
    'SELECT xact_commit::float8 AS commits FROM pg_stat_database WHERE datname = $1',
    [database],
  );
  return rows[0]?.commits ?? 0;
}

function variantRows(variant: Variant, rawP50: number, ceiling: number, judged: boolean): Row[] {
  const { label } = variant;
  const ok = variant.attempts.filter((attempt) => !attempt.failure).map((attempt) => attempt.ms);
  const vsRaw = median(ok) / rawP50;
  const vsHash = variant.throughput / ceiling;
  const idleP99 = percentile(variant.healthIdle, 99);
  const burstP99 = percentile(variant.healthBurst, 99);
  const vsIdle = burstP99 / idleP99;
  const maybe = (row: Row) => (judged ? judge(row) : { ...row, target: undefined });
  const phaseRows = [...variant.phases].map(([name, samples]) => latencyRow(`  ${label}: ${name}`, samples));
  return [
    latencyRow(`${label}: registerClinic over HTTP, ${CLIENTS} clients`, ok, {
      ratioText: `${vsRaw.toFixed(2)}× raw`,
    }),
    ...phaseRows,
    maybe({
      name: `${label}: throughput`,
      n: ok.length,
      ratio: vsHash,
      ratioText: `${vsHash.toFixed(2)}× (${variant.throughput.toFixed(1)} of ${ceiling.toFixed(1)}/s)`,
      target: TARGETS.throughputVsHash,
    }),
    latencyRow(`${label}: { health } idle`, variant.healthIdle, { ratioText: `p99 ${formatMs(idleP99)} ms` }),
    maybe(
      latencyRow(`${label}: { health } during burst`, variant.healthBurst, {
        ratio: vsIdle,
        ratioText: `${vsIdle.toFixed(2)}× (p99 ${formatMs(burstP99)} ms)`,
        target: TARGETS.healthDuringBurst,
      }),
    ),
  ];
}

async function register(url: string, label: string): Promise<Attempt> {
  const index = registered++;
  const tag = `${label.replaceAll(' ', '')}-${index}`;
  const input = registrationInput(`Bench Clinic ${tag}`, `bench+${tag}-${Date.now()}@example.com`);
  const sentAt = Date.now();
  const started = performance.now();
  let failure: string | undefined;
  let clinicId: string | undefined;
  try {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: REGISTER, variables: { input } }),
    });
    const body = (await response.json()) as {
      data?: { registerClinic?: RegisterPayload };
      errors?: { message: string }[];
    };
    const payload = body.data?.registerClinic;
    if (payload?.__typename === 'RegisterClinicSuccess' && payload.status === 'READY')
      clinicId = payload.clinic?.id;
    else if (payload) {
      failure = `${payload.__typename}${payload.status ? ` ${payload.status}` : ''}${payload.step ? ` at ${payload.step}` : ''}: ${payload.message ?? ''}`;
    } else failure = `HTTP ${response.status}: ${JSON.stringify(body.errors ?? body).slice(0, 200)}`;
  } catch (error) {
    failure = `request failed: ${error instanceof Error ? error.message : String(error)}`;
  }
  const ms = performance.now() - started;
  return { sentAt, receivedAt: Date.now(), ms, clinicId, failure };
}

async function healthQuery(url: string): Promise<number> {
  const { ms, value } = await timed(async () => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: HEALTH }),
    });
    return (await response.json()) as { data?: { health?: { status: string } } };
  });
  if (value.data?.health?.status !== 'OK') throw new Error(`health query answered ${JSON.stringify(value)}`);
  return ms;
}

/**
 * Where each registration's time went, from its provisioning run: before the saga (HTTP,
 * validation, the e-mail lookup, server placement; strict mode hashes the password beside the
 * run, decision 079, and its commit step waits for what is left of the hash), each step, the
 * saga's own bookkeeping (run and step records) and what follows it (response).
 */
async function breakdown(app: App, attempts: readonly Attempt[]): Promise<Map<string, number[]>> {
  const runs = await app.deps.db.prisma.provisioningRun.findMany({
    where: { clinicId: { in: attempts.map((attempt) => attempt.clinicId as string) } },
    include: { steps: { orderBy: { startedAt: 'asc' } } },
  });
  const byClinic = new Map(runs.map((run) => [run.clinicId, run]));
  const phases = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    const list = phases.get(name) ?? [];
    list.push(ms);
    phases.set(name, list);
  };
  for (const attempt of attempts) {
    const run = byClinic.get(attempt.clinicId as string);
    if (!run?.finishedAt) continue;
    const sagaMs = run.finishedAt.getTime() - run.startedAt.getTime();
    add('before saga (HTTP, lookups, placement)', run.startedAt.getTime() - attempt.sentAt);
    add('saga', sagaMs);
    let stepsMs = 0;
    for (const step of run.steps) {
      stepsMs += step.durationMs ?? 0;
      add(`  ${step.name}`, step.durationMs ?? 0);
    }
    add('  saga bookkeeping (run/step records)', sagaMs - stepsMs);
    add('after saga (response)', attempt.receivedAt - run.finishedAt.getTime());
  }
  return phases;
}

/** Counts how create_database got its database (warm spare or clone), from the app's events. */
function watchCreateDatabase(app: App): { stop(): Map<string, number> } {
  const counts = new Map<string, number>();
  const iterator = app.deps.events.pubsub.subscribe('provisioning')[Symbol.asyncIterator]();
  const loop = (async () => {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      const event = next.value;
      if (event.step === 'create_database' && event.status === 'SUCCEEDED') {
        const key = event.message ?? '?';
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      counts.set('events', (counts.get('events') ?? 0) + 1);
    }
  })();
  return {
    stop() {
      void iterator.return?.();
      void loop;
      return counts;
    },
  };
}

function describeSources(counts: Map<string, number>): string {
  const parts = [...counts].filter(([key]) => key !== 'events').map(([key, n]) => `${key} ×${n}`);
  return `${parts.join(', ') || 'no events seen'} (${counts.get('events') ?? 0} provisioning events published)`;
}

/** Sessions opened and transactions committed on the whole server so far (stats flush within 1 s). */
async function serverCounters(sql: Sql): Promise<{ sessions: number; commits: number }> {
  await sleep(1100);
  await sql.query('SELECT pg_stat_clear_snapshot()');
  const { rows } = await sql.query<{ sessions: number; commits: number }>(
    'SELECT sum(sessions)::int AS sessions, sum(xact_commit)::bigint::float8 AS commits FROM pg_stat_database',
  );
  return { sessions: rows[0]?.sessions ?? 0, commits: rows[0]?.commits ?? 0 };
}

interface Activity {
  samples: number;
  backendSamples: number;
  peak: number;
  /** Active-backend samples by wait event ("CPU" when none). */
  byWait: Map<string, number>;
  /** … by the first words of the statement. */
  byQuery: Map<string, number>;
}

/** Samples what PostgreSQL's active client backends are doing, until stopped. */
function sampleActivity(sql: Sql): { stop(): Promise<Activity> } {
  const activity: Activity = {
    samples: 0,
    backendSamples: 0,
    peak: 0,
    byWait: new Map(),
    byQuery: new Map(),
  };
  const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await sql.query<{ wait: string; query: string }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait,
                left(query, 300) AS query
           FROM pg_stat_activity
          WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()`,
      );
      activity.samples += 1;
      activity.backendSamples += rows.length;
      activity.peak = Math.max(activity.peak, rows.length);
      for (const row of rows) {
        bump(activity.byWait, row.wait);
        bump(activity.byQuery, statementKind(row.query));
      }
      await sleep(ACTIVITY_SAMPLE_MS);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return activity;
    },
  };
}

/** "CREATE DATABASE", "INSERT INTO provisioning_steps", "SELECT … FROM clinics" … from a statement. */
function statementKind(query: string): string {
  const text = query.replace(/\s+/g, ' ').replaceAll('"', '').replaceAll('public.', '').trim();
  const ddl =
    /^(CREATE|ALTER|DROP) (DATABASE|ROLE)|^(GRANT|REVOKE|COMMENT ON \w+|BEGIN|COMMIT|ROLLBACK)/i.exec(text);
  if (ddl) return ddl[0].toUpperCase();
  const call = /^SELECT (pg_notify|graphile_worker\.\w+|pg_advisory\w*)/i.exec(text);
  if (call) return `SELECT ${call[1]}()`;
  const write = /^(INSERT INTO|UPDATE|DELETE FROM) ([\w.]+)/i.exec(text);
  if (write) return `${write[1]?.toUpperCase()} ${write[2]}`;
  const read = /^(?:WITH .*?\)\s*)?SELECT .*? FROM ([\w.]+)/i.exec(text);
  if (read) return `SELECT … FROM ${read[1]}`;
  return text.split(' ').slice(0, 3).join(' ');
}

function top(counts: Map<string, number>, total: number, n = 6): string {
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([key, count]) => `${key} ${Math.round((count / Math.max(1, total)) * 100)}%`)
    .join(', ');
}

async function databaseSize(sql: Sql, name: string): Promise<string> {
  const { rows } = await sql.query<{ size: string }>('SELECT pg_size_pretty(pg_database_size($1)) AS size', [
    name,
  ]);
  return rows[0]?.size ?? '?';
}
