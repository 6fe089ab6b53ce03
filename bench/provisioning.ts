import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { App } from '../server/src/app.js';
import { migrate, readMigrations } from '../server/src/db/migrator.js';
import { CLINIC_MIGRATIONS_DIR } from '../server/src/db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../server/src/db/sql.js';
import type { Logger } from '../server/src/logger.js';
import { CONSENT_DOCUMENTS } from '../server/src/modules/consents/service.js';
import { ProvisioningFailedError } from '../server/src/modules/provisioning/errors.js';
import type { ProvisioningService } from '../server/src/modules/provisioning/service.js';
import { registerClinicSchema } from '../server/src/modules/registration/validation.js';
import { busyCores, pgCpuDelta, postgresCpu, readPostmasterPid, systemCpu } from './cpu.js';
import {
  type BenchOptions,
  formatMs,
  inParallel,
  judge,
  latencyRow,
  mb,
  median,
  type Row,
  type Sql,
  type Suite,
  type SuiteResult,
  settledRss,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

/** Untimed rounds first: Prisma, pg and V8 warm up on them. */
const WARMUP_ROUNDS = 1;
/** Clinics provisioned at once when filling the fleet. */
const FLEET_CONCURRENCY = 4;
/** Past this, creating the fleet is called out as too slow to run routinely. */
const FLEET_SLOW_MS = 5 * 60_000;
const PROBE_RUNS = 20;
const HEALTH_RUNS = 3;
const BACKEND_SAMPLE_MS = 20;
/**
 * Central connections a full sweep may open besides its C probes: its central statements run one
 * after another, and the only central pool with no connection left open between sweeps is the
 * monitor's raw pool (db.pool, pg's 10 s idle timeout), which the catalog comparison reopens.
 */
const SWEEP_CENTRAL_CONNECTIONS = 1;
/** env.ts caps CLINIC_POOL_SIZE here. */
const MAX_POOL_SIZE = 50;
/**
 * Quiet time before each timed sample, after a CHECKPOINT: every variant starts from a server with
 * no dirty buffers, no WAL being written and no refill running (see bench/README.md, decision 072).
 */
const SETTLE_MS = 150;
/** Pooled registrations whose round trips are timed one by one for the breakdown. */
const BREAKDOWN_RUNS = 9;
/** The steps between "the clinic row exists" and "its database is ready to use". */
const DB_READY_STEPS = ['create_database', 'migrate_database', 'verify_database', 'seed_provider'];

const TARGETS = {
  poolVsRaw: { op: '<=', value: 0.5, text: '≤ 0.50× raw' },
  noPoolVsRaw: { op: '<=', value: 1.5, text: '≤ 1.50× raw' },
  poolSpeedupVsNaive: { op: '>=', value: 5, text: '≥ 5× faster' },
  healthVsBursts: { op: '<=', value: 1.3, text: '≤ 1.30× (N÷C)·burst' },
  backends: { op: '<=', value: 1, text: '≤ C probes + 1' },
  memory: { op: '<=', value: 1.5, text: '≤ 1.50× idle rss' },
  sustainedFailures: { op: '<=', value: 0, text: '0 failures' },
} as const;

export const provisioning: Suite = { name: 'provisioning', run };

/** An admin connection to the benchmark server (pg resolves from server/, so no direct import). */

interface Provisioned {
  totalMs: number;
  dbReadyMs: number;
  stepMs: Map<string, number>;
  /** The clinic database existed before the call started: a claimed warm spare. */
  fromSpare: boolean;
}

/** What the measuring functions share. */
interface Bench {
  options: BenchOptions;
  tmp: string;
  serverUrl: string;
  /** The benchmark's own admin connection: raw clones, catalog lookups, backend sampling. */
  sql: Sql;
  /** Running apps, stopped by `run` whatever happens. */
  apps: Set<App>;
  /** The bench server's postmaster, for its processes' CPU (undefined without /proc). */
  postmasterPid: number | undefined;
  /** The pooled app's log: what it says about failed and retried steps. */
  stepLog: StepLog;
}

/** A log line of the runner about a step (engine/runner.ts), with the child logger's run id. */
interface StepLine {
  msg: string;
  runId?: string;
  step?: string;
  error?: string;
  errorCode?: string;
}

/**
 * The pooled app's log destination: keeps the runner's lines about failed and retried steps (so
 * the sustained row can tell whether the server logged every failure's cause, and how many
 * transient errors its steps rode out) and passes errors on to stderr, as LOG_LEVEL=error did.
 */
class StepLog {
  static readonly FAILED = 'provisioning step failed';
  static readonly RETRIED = 'provisioning step failed transiently; trying again';
  lines: StepLine[] = [];
  write(text: string): void {
    for (const raw of text.split('\n')) {
      if (raw.trim() === '') continue;
      let line: StepLine & { level?: number };
      try {
        line = JSON.parse(raw) as StepLine & { level?: number };
      } catch {
        process.stderr.write(`${raw}\n`);
        continue;
      }
      if (line.msg === StepLog.FAILED || line.msg === StepLog.RETRIED) this.lines.push(line);
      else if ((line.level ?? 0) >= 50) process.stderr.write(`${raw}\n`);
    }
  }
}

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(
    options,
    (server) =>
      measure({
        options,
        ...server,
        postmasterPid: readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid')),
        stepLog: new StepLog(),
      }),
    // The fleet, and the latency rounds' clinics beside it.
    { clinicDatabases: Math.max(0, ...options.clinics) + 10 * options.iterations + 100 },
  );
}

async function measure(bench: Bench): Promise<SuiteResult> {
  const { options, sql } = bench;
  const poolSize = Math.min(options.iterations + 2, MAX_POOL_SIZE);
  options.log('starting the app without a warm pool');
  const { app: noPool } = await startBenchApp(bench, 'bench_central_no_pool', 0);
  options.log(`starting the app with a warm pool of ${poolSize}`);
  const { app: withPool } = await startBenchApp(
    bench,
    'bench_central_pool',
    poolSize,
    { LOG_LEVEL: 'warn' },
    { logTo: bench.stepLog },
  );
  const idleRss = await settledRss();

  const latency = await measureLatency(bench, noPool, withPool);
  // Only the pooled app keeps running for the fleet, so the server's backends are its own.
  bench.apps.delete(noPool);
  await noPool.stop();
  const fleet = await measureFleet(bench, withPool, idleRss);

  const serverVersion = (await sql.query<{ server_version: string }>('SHOW server_version')).rows[0]
    ?.server_version;
  return {
    rows: [...latency.rows, ...fleet.rows],
    notes: [
      `PostgreSQL ${serverVersion}, template ${latency.template}, warm pool of ${poolSize} spares, ` +
        `${WARMUP_ROUNDS} untimed warm-up round(s), idle rss ${mb(idleRss.bytes)}` +
        (idleRss.collected ? ' (after GC).' : ' (no GC available).'),
      ...latency.notes,
      ...fleet.notes,
    ],
    meta: {
      postgres: serverVersion,
      template: latency.template,
      poolSize,
      warmupRounds: WARMUP_ROUNDS,
      idleRssBytes: idleRss.bytes,
      gc: idleRss.collected,
      sessionsPerProvision: latency.sessions,
      fleet: fleet.meta,
    },
  };
}

/**
 * Raw clone, naive create + migrate, Onramp without and with the pool, round-robin: every
 * variant sees the same machine at the same moment, so their ratios survive a noisy host.
 */
async function measureLatency(bench: Bench, noPool: App, withPool: App) {
  const { options, sql, serverUrl } = bench;
  const [clinicServer] = noPool.deps.db.clinicServers;
  if (!clinicServer) throw new Error('no clinic database server');
  const template = clinicServer.template.name;
  const migrations = readMigrations(CLINIC_MIGRATIONS_DIR);

  const raw: number[] = [];
  const rawCpu: number[] = [];
  const rawQueue: number[] = [];
  /** Pages the kernel scanned to reclaim memory during each raw clone (kswapd and direct). */
  const rawReclaim: number[] = [];
  const memFreeMb: number[] = [];
  let rawPgCpuS = 0;
  const naive: number[] = [];
  const runsNoPool: Provisioned[] = [];
  const runsPool: Provisioned[] = [];
  const backend = (await sql.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
  // Every sample starts from the same server state: no refill running, nothing dirty, idle.
  const settle = async () => {
    await withPool.deps.provisioning.pool.idle();
    await sql.query('CHECKPOINT');
    await sleep(SETTLE_MS);
  };
  const rounds = WARMUP_ROUNDS + options.iterations;
  const started = {
    load: loadavg()[0] ?? 0,
    system: systemCpu(),
    node: process.cpuUsage(),
    pg: postgresCpu(bench.postmasterPid),
    at: performance.now(),
  };
  for (let round = 0; round < rounds; round++) {
    const keep = round >= WARMUP_ROUNDS;
    options.log(`latency round ${round + 1}/${rounds}${keep ? '' : ' (warm-up)'}`);

    await settle();
    const rawName = `bench_raw_${round}`;
    const memory = kernelMemory();
    const schedBefore = schedstat(backend);
    const pgBefore = postgresCpu(bench.postmasterPid);
    const rawTime = await timed(() =>
      sql.query(`CREATE DATABASE ${quoteIdent(rawName)} TEMPLATE ${quoteIdent(template)}`),
    );
    const schedAfter = schedstat(backend);
    const memoryAfter = kernelMemory();
    const pgCpu = pgCpuDelta(pgBefore, postgresCpu(bench.postmasterPid), rawTime.ms);
    await sql.query(`DROP DATABASE ${quoteIdent(rawName)}`);

    await settle();
    const naiveName = `bench_naive_${round}`;
    const naiveTime = await timed(async () => {
      await sql.query(`CREATE DATABASE ${quoteIdent(naiveName)} TEMPLATE template0`);
      await withClient(databaseUrl(serverUrl, naiveName), (client) => migrate(client, migrations));
    });
    await sql.query(`DROP DATABASE ${quoteIdent(naiveName)} WITH (FORCE)`);

    await settle();
    const plain = await provisionOne(noPool, sql, `Bench no pool ${round}`);

    // Timed with a full pool; the refill its claim starts is awaited by the next settle.
    await settle();
    const pooled = await provisionOne(withPool, sql, `Bench pool ${round}`);

    if (keep) {
      raw.push(rawTime.ms);
      if (schedBefore && schedAfter) {
        rawCpu.push(schedAfter.runMs - schedBefore.runMs);
        rawQueue.push(schedAfter.waitMs - schedBefore.waitMs);
      }
      if (pgCpu) rawPgCpuS += (pgCpu.total * rawTime.ms) / 1000;
      if (memory && memoryAfter) {
        rawReclaim.push(memoryAfter.scanned - memory.scanned);
        memFreeMb.push(memory.freeMb);
      }
      naive.push(naiveTime.ms);
      runsNoPool.push(plain);
      runsPool.push(pooled);
    }
  }
  await withPool.deps.provisioning.pool.idle();
  const wallS = (performance.now() - started.at) / 1000;
  const systemEnd = systemCpu();
  const nodeCores = (() => {
    const used = process.cpuUsage(started.node);
    return (used.user + used.system) / 1e6 / wallS;
  })();
  const machineCores =
    started.system && systemEnd
      ? ((systemEnd.busy - started.system.busy) / (systemEnd.total - started.system.total)) * cpus().length
      : undefined;
  const pgCores = pgCpuDelta(started.pg, postgresCpu(bench.postmasterPid), wallS * 1000)?.total;
  const otherCores =
    machineCores !== undefined && pgCores !== undefined ? machineCores - nodeCores - pgCores : undefined;
  const loadEnd = loadavg()[0] ?? 0;

  const rawP50 = median(raw);
  const naiveP50 = median(naive);
  const vsRaw = (samples: number[]) => {
    const ratio = median(samples) / rawP50;
    return { ratio, ratioText: `${ratio.toFixed(2)}× raw` };
  };
  const totalNoPool = runsNoPool.map((run) => run.totalMs);
  const totalPool = runsPool.map((run) => run.totalMs);
  const readyNoPool = runsNoPool.map((run) => run.dbReadyMs);
  const readyPool = runsPool.map((run) => run.dbReadyMs);
  const speedup = naiveP50 / median(readyPool);
  // Each round's pooled db-ready against that round's own clone: the load a round saw hits both.
  const perRound = median(runsPool.map((run, i) => run.dbReadyMs / (raw[i] ?? Number.NaN)));

  const rows: Row[] = [
    latencyRow('raw: CREATE DATABASE … TEMPLATE', raw, { ratio: 1, ratioText: 'baseline' }),
    ...(rawCpu.length > 0
      ? [
          latencyRow('  raw: its backend on a CPU', rawCpu),
          latencyRow('  raw: its backend waiting for a CPU', rawQueue),
        ]
      : []),
    latencyRow('naive: CREATE DATABASE + migrations', naive, vsRaw(naive)),
    latencyRow('no pool: registration (whole call)', totalNoPool, vsRaw(totalNoPool)),
    judge(
      latencyRow('no pool: db-ready', readyNoPool, { ...vsRaw(readyNoPool), target: TARGETS.noPoolVsRaw }),
    ),
    ...stepRows('no pool', runsNoPool),
    latencyRow('pool: registration (whole call)', totalPool, vsRaw(totalPool)),
    judge(latencyRow('pool: db-ready', readyPool, { ...vsRaw(readyPool), target: TARGETS.poolVsRaw })),
    {
      name: "pool: db-ready ÷ its round's raw clone, median",
      n: readyPool.length,
      ratio: perRound,
      ratioText: `${perRound.toFixed(2)}× raw`,
    },
    ...stepRows('pool', runsPool),
    judge({
      name: 'pool: db-ready speed-up over naive',
      n: readyPool.length,
      ratio: speedup,
      ratioText: `${speedup.toFixed(1)}× faster`,
      target: TARGETS.poolSpeedupVsNaive,
    }),
  ];
  const sessions = {
    noPool: await sessionsDuring(sql, () => provisionOne(noPool, sql, 'Bench sessions no pool')),
    pool: await sessionsDuring(sql, async () => {
      await provisionOne(withPool, sql, 'Bench sessions pool');
      await withPool.deps.provisioning.pool.idle();
    }),
  };
  const breakdown = await measureBreakdown(bench, withPool);
  const notes = [
    `Latency rounds: load average ${started.load.toFixed(1)} → ${loadEnd.toFixed(1)}, ` +
      (otherCores === undefined
        ? 'no /proc for CPU accounting; '
        : `other processes ${otherCores.toFixed(2)} cores (this process ${nodeCores.toFixed(2)}, PostgreSQL ${(pgCores ?? 0).toFixed(2)}); `) +
      `each sample after a CHECKPOINT and ${SETTLE_MS} ms idle, no refill running.`,
    ...(rawCpu.length > 0
      ? [
          `Raw clone: PostgreSQL CPU ${formatMs((rawPgCpuS * 1000) / raw.length)} ms per clone (all its processes, ` +
            `10 ms ticks), of which its backend ${formatMs(median(rawCpu))} ms (p50, schedstat); ` +
            `wall ${formatMs(rawP50)} = CPU + ${formatMs(median(rawQueue))} ms waiting for a CPU + the rest blocked.`,
        ]
      : []),
    ...(rawReclaim.length === rawCpu.length && rawCpu.length > 0
      ? [reclaimNote(raw, rawCpu, rawReclaim, memFreeMb)]
      : []),
    ...breakdown,
    'Claimed warm spares (clinic database older than the call): ' +
      `pool ${count(runsPool, (run) => run.fromSpare)}/${runsPool.length}, ` +
      `no pool ${count(runsNoPool, (run) => run.fromSpare)}/${runsNoPool.length}.`,
    `Server sessions opened by one registration (pg_stat_database.sessions): no pool ${sessions.noPool}, ` +
      `pool ${sessions.pool} (its refill's included); one superuser connect+disconnect costs ` +
      `${formatMs(await connectCost(serverUrl))} ms here.`,
  ];
  return { rows, notes, template, sessions };
}

/**
 * For each clinic count: tops the pooled app up to that many clinics, then times clinicsHealth
 * against one probe while sampling the server's backends, and compares the process's memory
 * with its idle memory.
 */
async function measureFleet(bench: Bench, app: App, idleRss: { bytes: number }) {
  const { options, sql } = bench;
  const { provisioning, db, config } = app.deps;
  const concurrency = config.clinicHealthConcurrency;
  const rows: Row[] = [];
  const notes: string[] = [];
  const meta: Record<string, unknown>[] = [];

  for (const wanted of options.clinics) {
    const missing = Math.max(0, wanted - (await db.prisma.clinic.count({ where: { status: 'READY' } })));
    options.log(`fleet ${wanted}: provisioning ${missing} clinics, ${FLEET_CONCURRENCY} at a time`);
    const fill = await sustain(bench, app, missing);
    await provisioning.pool.idle();
    // The fill leaves gigabytes of WAL and dirty buffers; flush them now rather than during timing.
    await sql.query('CHECKPOINT');
    const clinics = await db.prisma.clinic.count();
    if (missing > 0) {
      rows.push(fill.row);
      notes.push(...fill.notes);
    }
    const rss = await settledRss();

    const probed = await db.prisma.clinic.findFirst({
      where: { status: 'READY' },
      orderBy: { createdAt: 'asc' },
      select: { id: true },
    });
    if (!probed) throw new Error('no READY clinic to probe');
    await provisioning.checkClinic(probed.id);
    const probes: number[] = [];
    for (let i = 0; i < PROBE_RUNS; i++) {
      probes.push((await timed(() => provisioning.checkClinic(probed.id))).ms);
    }

    const burst = await db.prisma.clinic.findMany({
      where: { status: 'READY' },
      orderBy: { createdAt: 'asc' },
      take: concurrency,
      select: { id: true },
    });
    const burstIds = burst.map((clinic) => clinic.id);

    // Bursts of C probes at once and sweeps alternate, so both see the machine of the moment.
    const bursts: number[] = [];
    const sweeps: number[] = [];
    const sweepBackends: SweepBackends[] = [];
    let report = { total: 0, healthy: 0 };
    const sweepCpu = { nodeMs: 0, pgMs: 0 };
    const burstCpu = { nodeMs: 0, pgMs: 0 };
    const sweepOthers: number[] = [];
    const loadBefore = loadavg()[0] ?? 0;
    for (let i = 0; i < HEALTH_RUNS; i++) {
      const burstRun = await cpuDuring(bench, () => probeBursts(provisioning, burstIds));
      bursts.push(...burstRun.value);
      burstCpu.nodeMs += burstRun.nodeMs;
      burstCpu.pgMs += burstRun.pgMs ?? 0;
      options.log(`fleet ${clinics}: clinicsHealth ${i + 1}/${HEALTH_RUNS}`);
      const before = await listBackends(sql);
      const sampler = sampleBackends(sql, BACKEND_SAMPLE_MS);
      const sweep = await cpuDuring(bench, () => provisioning.clinicsHealth());
      sweepCpu.nodeMs += sweep.nodeMs;
      sweepCpu.pgMs += sweep.pgMs ?? 0;
      if (sweep.otherCores !== undefined) sweepOthers.push(sweep.otherCores);
      sweepBackends.push(ownBackends(before, await sampler.stop()));
      sweeps.push(sweep.ms);
      report = sweep.value;
    }
    const loadAfter = loadavg()[0] ?? 0;
    const havePgCpu = bench.postmasterPid !== undefined;
    const perClinic = (cpu: { nodeMs: number; pgMs: number }, probesRun: number) =>
      `this process ${formatMs(cpu.nodeMs / probesRun)} ms` +
      (havePgCpu ? `, PostgreSQL ${formatMs(cpu.pgMs / probesRun)} ms` : '');
    const probeMs = median(probes);
    const burstMs = median(bursts);
    const speedup = (concurrency * probeMs) / burstMs;
    // What the machine gives: N probes in bursts of C, each burst as long as C measured at once.
    const expectedMs = (report.total / concurrency) * burstMs;
    const healthRatio = median(sweeps) / expectedMs;
    const oldRatio = median(sweeps) / ((report.total / concurrency) * probeMs);
    const peakProbes = Math.max(...sweepBackends.map((sweep) => sweep.peakProbes));
    const peakOthers = Math.max(...sweepBackends.map((sweep) => sweep.peakOthers));

    rows.push(
      latencyRow(`fleet ${clinics}: checkClinic (one probe)`, probes),
      latencyRow(`fleet ${clinics}: ${concurrency} probes at once`, bursts),
      judge(
        latencyRow(`fleet ${clinics}: clinicsHealth`, sweeps, {
          ratio: healthRatio,
          ratioText: `${healthRatio.toFixed(2)}× ${Math.round(expectedMs)} ms`,
          target: TARGETS.healthVsBursts,
        }),
      ),
      judge({
        name: `fleet ${clinics}: peak sweep backends`,
        n: HEALTH_RUNS,
        ratio: Math.max(peakProbes / concurrency, peakOthers / SWEEP_CENTRAL_CONNECTIONS),
        ratioText: `${peakProbes}+${peakOthers} / ${concurrency}+${SWEEP_CENTRAL_CONNECTIONS}`,
        target: TARGETS.backends,
      }),
      judge({
        name: `fleet ${clinics}: process rss`,
        n: clinics,
        ratio: rss.bytes / idleRss.bytes,
        ratioText: `${mb(rss.bytes)} / ${mb(idleRss.bytes)}`,
        target: TARGETS.memory,
      }),
    );
    notes.push(
      `fleet ${clinics}: C = ${concurrency}; clinicsHealth found ${report.healthy}/${report.total} HEALTHY; ` +
        `${provisioning.clients.size} clinic Prisma clients cached.`,
      `fleet ${clinics}: ${concurrency} probes at once take ${formatMs(burstMs)} ms (median of ${bursts.length}, ` +
        `between the sweeps) vs ${concurrency} × ${formatMs(probeMs)} ms one by one: ${speedup.toFixed(1)}× parallel ` +
        `speed-up on ${cpus().length} CPUs. clinicsHealth target: ≤ 1.30 × (N ÷ C) × that burst ` +
        `= N × probe ÷ speed-up; against (N ÷ C) × probe (the old form, which assumes ${concurrency}×) it is ` +
        `${oldRatio.toFixed(2)}×.`,
      `fleet ${clinics}: CPU per clinic: sweeps ${perClinic(sweepCpu, HEALTH_RUNS * report.total)}; ` +
        `bursts ${perClinic(burstCpu, bursts.length * concurrency)}; ` +
        (sweepOthers.length > 0
          ? `other processes during the sweeps ${sweepOthers.map((cores) => cores.toFixed(2)).join(', ')} cores; `
          : '') +
        `load average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)}.`,
      `fleet ${clinics}: backends the sweeps opened (not open just before, by pid), at each sweep's peak: ` +
        sweepBackends.map((sweep) => `${sweep.peak} (${describeGroups(sweep.atPeak)})`).join('; ') +
        `; open before: ${sweepBackends.map((sweep) => sweep.before).join(', ')}; most at once of all backends: ` +
        `${Math.max(...sweepBackends.map((sweep) => sweep.peakAll))}.`,
    );
    meta.push({
      clinics,
      ...fill.meta,
      concurrency,
      sweepBackends,
      probeBurstMs: burstMs,
      sweepCpuMsPerClinic: sweepCpu.nodeMs / HEALTH_RUNS / report.total,
      sweepPostgresMsPerClinic: havePgCpu ? sweepCpu.pgMs / HEALTH_RUNS / report.total : undefined,
      burstCpuMsPerProbe: burstCpu.nodeMs / bursts.length / concurrency,
      burstPostgresMsPerProbe: havePgCpu ? burstCpu.pgMs / bursts.length / concurrency : undefined,
      healthy: report.healthy,
      total: report.total,
      rssBytes: rss.bytes,
      cachedClinicClients: provisioning.clients.size,
      parallelProbeSpeedup: speedup,
    });
  }
  return { rows, notes, meta };
}

/** One registration of a fill that did not end READY: where and why, as the central records tell it. */
interface Failure {
  index: number;
  step: string;
  cause: string;
}

/**
 * Issue 16's sustained provisioning: `count` registrations, FLEET_CONCURRENCY at a time, judged on
 * failures (target: none). Every failure is reported with its step and cause, read back from
 * provisioning_runs and provisioning_steps: what an operator would find, not what the bench saw.
 */
async function sustain(bench: Bench, app: App, count: number) {
  const { options } = bench;
  const attempts: { ms: number; runId?: string; error?: unknown }[] = [];
  const pgBefore = postgresCpu(bench.postmasterPid);
  const systemBefore = systemCpu();
  const cpuBefore = process.cpuUsage();
  const loadBefore = loadavg()[0] ?? 0;
  const logFrom = bench.stepLog.lines.length;
  let index = 0;
  let done = 0;
  const fill = await timed(() =>
    inParallel(Array.from({ length: count }), FLEET_CONCURRENCY, async () => {
      const mine = index++;
      const started = performance.now();
      try {
        await registerClinic(app, `Bench fleet ${mine}`);
        attempts[mine] = { ms: performance.now() - started };
      } catch (error) {
        const runId = error instanceof ProvisioningFailedError ? error.runId : undefined;
        attempts[mine] = { ms: performance.now() - started, runId, error };
        options.log(`fleet clinic ${mine} failed: ${redact(errorText(error))}`);
      }
      done += 1;
      if (done % 250 === 0) options.log(`sustained: ${done}/${count}`);
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const pgCores = pgCpuDelta(pgBefore, postgresCpu(bench.postmasterPid), fill.ms);
  const systemCores = busyCores(systemBefore, systemCpu());
  const loadAfter = loadavg()[0] ?? 0;
  const logged = bench.stepLog.lines.slice(logFrom);
  const retries = logged.filter((line) => line.msg === StepLog.RETRIED);
  const retriedCauses = new Map<string, number>();
  for (const line of retries) {
    const key = `${line.step}: ${redact(line.error ?? '(no message)')}`;
    retriedCauses.set(key, (retriedCauses.get(key) ?? 0) + 1);
  }
  const unlogged = attempts.filter(
    (attempt) =>
      attempt?.runId !== undefined &&
      !logged.some((line) => line.msg === StepLog.FAILED && line.runId === attempt.runId),
  ).length;

  const failures: Failure[] = [];
  for (const [i, attempt] of attempts.entries()) {
    if (attempt?.error !== undefined) failures.push(await readFailure(app, i, attempt.runId, attempt.error));
  }
  const succeededMs = attempts.filter((attempt) => attempt.error === undefined).map((attempt) => attempt.ms);
  const rate = (succeededMs.length / fill.ms) * 1000;
  const nodeCores = (cpu.user + cpu.system) / 1000 / fill.ms;
  const byCause = new Map<string, number>();
  for (const failure of failures) {
    const key = `${failure.step}: ${failure.cause}`;
    byCause.set(key, (byCause.get(key) ?? 0) + 1);
  }
  const row = judge(
    latencyRow(`sustained: ${count} clinics, ${FLEET_CONCURRENCY} at a time`, succeededMs, {
      n: count,
      ratio: failures.length,
      ratioText: `${failures.length} failed, ${rate.toFixed(1)}/s`,
      target: TARGETS.sustainedFailures,
    }),
  );
  const notes = [
    `sustained: ${succeededMs.length}/${count} READY in ${(fill.ms / 1000).toFixed(1)} s ` +
      `(${rate.toFixed(1)}/s; p50 ${formatMs(row.p50Ms)} ms, p95 ${formatMs(row.p95Ms)} ms, p99 ${formatMs(row.p99Ms)} ms)` +
      (failures.length > 0 ? `, ${failures.length} FAILED:` : ', 0 failed.') +
      (fill.ms > FLEET_SLOW_MS ? ' Too slow to run routinely: lower BENCH_CLINICS.' : ''),
    ...[...byCause].map(
      ([cause, n]) =>
        `    ${n} × ${cause} (clinics ${failures
          .filter((failure) => `${failure.step}: ${failure.cause}` === cause)
          .slice(0, 5)
          .map((failure) => failure.index)
          .join(', ')})`,
    ),
    `sustained: transient errors retried within a step: ${retries.length}` +
      (retries.length > 0
        ? ` (${[...retriedCauses]
            .slice(0, 5)
            .map(([cause, n]) => `${n} × ${cause}`)
            .join('; ')})`
        : '') +
      (failures.length > 0
        ? `; failed runs whose cause the server did not log ("${StepLog.FAILED}"): ${unlogged}.`
        : '.'),
    `sustained: CPU in cores: this process ${nodeCores.toFixed(2)}` +
      (pgCores ? `, PostgreSQL ${pgCores.total.toFixed(2)}` : '') +
      (systemCores === undefined
        ? ''
        : `, other processes ${Math.max(0, systemCores - nodeCores - (pgCores?.total ?? 0)).toFixed(2)}; ` +
          `whole machine ${systemCores.toFixed(2)} of ${cpus().length}`) +
      `; per registration ${(((nodeCores + (pgCores?.total ?? 0)) * fill.ms) / Math.max(1, succeededMs.length)).toFixed(0)} ms ` +
      `(this process + PostgreSQL); load average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)}.`,
  ];
  return {
    row,
    notes,
    meta: {
      attempted: count,
      created: succeededMs.length,
      failed: failures.length,
      failures,
      retries: retries.length,
      unloggedFailures: unlogged,
      fillMs: Math.round(fill.ms),
      ratePerSecond: rate,
      nodeCores,
      postgresCores: pgCores?.total,
      machineCores: systemCores,
      loadAverage: [loadBefore, loadAfter],
    },
  };
}

/** The failed step and its recorded error for a registration that threw (the run's record if no step failed). */
async function readFailure(
  app: App,
  index: number,
  runId: string | undefined,
  error: unknown,
): Promise<Failure> {
  if (runId === undefined) return { index, step: '(no run)', cause: redact(errorText(error)) };
  const { prisma } = app.deps.db;
  const run = await prisma.provisioningRun.findUnique({
    where: { id: runId },
    select: {
      status: true,
      error: true,
      steps: { where: { status: 'FAILED' }, orderBy: { finishedAt: 'asc' } },
    },
  });
  const step = run?.steps[0];
  if (step) return { index, step: step.name, cause: redact(step.error ?? '(no message recorded)') };
  return {
    index,
    step: '(run)',
    cause: redact(`${run?.status ?? 'no run record'}: ${run?.error ?? errorText(error)}`),
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A recorded error may quote a connection string: its password never reaches the notes. */
function redact(text: string): string {
  return text.replace(/(\/\/[^\s/:@]*):[^\s@]*@/g, '$1:…@').slice(0, 300);
}

let registered = 0;

/**
 * One registration through the service call registerClinic makes (no HTTP: bench/registration.ts
 * times that path); its clinic's id.
 */
async function registerClinic(app: App, clinicName: string): Promise<string> {
  const { registration, config } = app.deps;
  registered += 1;
  const acceptances = CONSENT_DOCUMENTS.map((document) => ({
    document,
    version: config.consentVersions[document],
  }));
  const input = registerClinicSchema.parse({
    clinicName,
    country: 'FR',
    adminEmail: `ada+${registered}@example.com`,
    adminPassword: 'a sturdy passphrase 42',
    adminFirstName: 'Ada',
    adminLastName: 'Lovelace',
    acceptedDocuments: acceptances,
  });
  return (await registration.register(input, { ip: null, acceptances })).clinicId;
}

/** One registration, with its step durations read back from provisioning_steps. */
async function provisionOne(app: App, sql: Sql, clinicName: string): Promise<Provisioned> {
  const { db } = app.deps;
  const before = await sql.query<{ oid: number }>('SELECT max(oid)::bigint AS oid FROM pg_database');
  const newest = Number(before.rows[0]?.oid);
  const call = await timed(() => registerClinic(app, clinicName));
  const clinicId = call.value;
  const { id: runId } = await db.prisma.provisioningRun.findFirstOrThrow({
    where: { clinicId, kind: 'REGISTER' },
    orderBy: { startedAt: 'desc' },
    select: { id: true },
  });
  const steps = await db.prisma.provisioningStep.findMany({
    where: { runId },
    select: { name: true, durationMs: true },
  });
  const stepMs = new Map(steps.map((step) => [step.name, step.durationMs ?? 0]));
  const clinic = await db.prisma.clinic.findUniqueOrThrow({
    where: { id: clinicId },
    select: { databaseName: true },
  });
  const { rows } = await sql.query<{ oid: number }>(
    'SELECT oid::bigint AS oid FROM pg_database WHERE datname = $1',
    [clinic.databaseName],
  );
  return {
    totalMs: call.ms,
    dbReadyMs: DB_READY_STEPS.reduce((sum, name) => sum + (stepMs.get(name) ?? 0), 0),
    stepMs,
    fromSpare: Number(rows[0]?.oid) <= newest,
  };
}

/** One statement (or connect) a traced registration sent, with how long its promise took. */
interface Trip {
  database: string;
  text: string;
  ms: number;
  connect: boolean;
}

/** What pg's Client prototype exposes to the trace (the bench's own session is one). */
type ClientMethod = (this: { database?: string }, ...args: unknown[]) => unknown;

/**
 * Times every statement and connect of `work` on pg's Client (the prototype of the bench's own
 * session, shared with the apps' pools and Prisma's pg adapter), from the call to its answer.
 */
async function traced<T>(sql: Sql, work: () => Promise<T>): Promise<{ value: T; trips: Trip[] }> {
  const proto = Object.getPrototypeOf(sql) as { query: ClientMethod; connect: ClientMethod };
  const { query, connect } = proto;
  const trips: Trip[] = [];
  const wrap = (original: ClientMethod, isConnect: boolean): ClientMethod =>
    function (this: { database?: string }, ...args: unknown[]) {
      const result = original.apply(this, args);
      if (!(result instanceof Promise)) return result;
      const first = args[0];
      const text = isConnect
        ? 'connect'
        : typeof first === 'string'
          ? first
          : ((first as { text?: string } | undefined)?.text ?? '');
      const database = this.database ?? '';
      const started = performance.now();
      const done = () => trips.push({ database, text, ms: performance.now() - started, connect: isConnect });
      return result.then(
        (value: unknown) => {
          done();
          return value;
        },
        (error: unknown) => {
          done();
          throw error;
        },
      );
    };
  proto.query = wrap(query, false);
  proto.connect = wrap(connect, true);
  try {
    return { value: await work(), trips };
  } finally {
    proto.query = query;
    proto.connect = connect;
  }
}

/**
 * Pooled db-ready by round trip: `BREAKDOWN_RUNS` pooled registrations traced statement by
 * statement (medians over the runs), beside the unit costs on this machine: one round trip on a
 * warm session and one superuser connect.
 */
async function measureBreakdown(bench: Bench, app: App): Promise<string[]> {
  const { sql, serverUrl } = bench;
  const central = new URL(app.deps.config.databaseUrl ?? '').pathname.slice(1);
  const kinds: [string, (trip: Trip) => boolean][] = [
    ['create: ledger write', (t) => t.database === central && t.text.includes('"clinic_objects"')],
    // The clinic server's admin session (its database is whatever the server's URL names).
    ['create: role', (t) => t.text.startsWith('CREATE ROLE') && !t.text.includes('RENAME TO')],
    ['create: target lookup', (t) => t.text.startsWith('SELECT 1 FROM pg_database WHERE datname')],
    ['create: spare lookup', (t) => t.text.includes('starts_with(datname, $1) AND NOT datallowconn')],
    ['create: claim message', (t) => t.text.includes('RENAME TO')],
    ['create: password write', (t) => t.database === central && t.text.includes('"database_password_enc"')],
    ['verify: clinic-role connect', (t) => t.connect && t.database.startsWith('clinic_')],
    [
      'verify: check',
      (t) => !t.connect && t.database.startsWith('clinic_') && t.text.trim().startsWith('SELECT'),
    ],
    ['seed: insert', (t) => t.database.startsWith('clinic_') && t.text.trim().startsWith('INSERT')],
  ];
  const per = new Map<string, number[]>(kinds.map(([name]) => [name, []]));
  const steps = new Map<string, number[]>();
  const centralOther: number[] = [];
  for (let i = 0; i < BREAKDOWN_RUNS; i++) {
    await app.deps.provisioning.pool.idle();
    await sql.query('CHECKPOINT');
    await sleep(SETTLE_MS);
    const { value: run, trips } = await traced(sql, () => provisionOne(app, sql, `Bench breakdown ${i}`));
    for (const [name, match] of kinds) {
      const found = trips.filter(match);
      per.get(name)?.push(found.reduce((sum, trip) => sum + trip.ms, 0));
    }
    centralOther.push(trips.filter((trip) => trip.database === central).length);
    for (const name of DB_READY_STEPS) {
      const list = steps.get(name) ?? [];
      list.push(run.stepMs.get(name) ?? 0);
      steps.set(name, list);
    }
  }
  await app.deps.provisioning.pool.idle();
  const roundTrip: number[] = [];
  for (let i = 0; i < 50; i++) roundTrip.push((await timed(() => sql.query('SELECT 1'))).ms);
  const parts = [...per].map(([name, samples]) => `${name} ${formatMs(median(samples))}`).join(', ');
  const stepText = DB_READY_STEPS.map((name) => `${name} ${formatMs(median(steps.get(name) ?? []))}`).join(
    ', ',
  );
  return [
    `Pooled db-ready by round trip (${BREAKDOWN_RUNS} traced registrations, ms, medians; a trip is timed ` +
      `from its call to its answer): ${parts}. Steps: ${stepText}. ` +
      `Central statements per registration: ${median(centralOther)}.`,
    `Unit costs here: one round trip on a warm session (SELECT 1) ${formatMs(median(roundTrip))} ms p50; ` +
      `one superuser connect + disconnect ${formatMs(await connectCost(serverUrl))} ms.`,
  ];
}

/**
 * The kernel's free memory and the pages it has scanned to reclaim some, kswapd's and direct
 * (Linux /proc), or undefined elsewhere. A clone writes ~12 MB of new pages (data and WAL): with
 * no free memory each of them is reclaimed first, on the backend's own CPU when direct.
 */
function kernelMemory(): { freeMb: number; scanned: number } | undefined {
  try {
    const vmstat = readFileSync('/proc/vmstat', 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(vmstat)?.[1] ?? 0);
    const free = /^MemFree:\s+(\d+) kB$/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
    return {
      freeMb: Number(free ?? 0) / 1024,
      scanned: field('pgscan_kswapd') + field('pgscan_direct'),
    };
  } catch {
    return undefined;
  }
}

/** Raw clones with and without the kernel reclaiming memory meanwhile, side by side. */
function reclaimNote(wall: number[], cpu: number[], scanned: number[], freeMb: number[]): string {
  const during = cpu.filter((_, i) => (scanned[i] ?? 0) > 0);
  const calm = cpu.filter((_, i) => (scanned[i] ?? 0) === 0);
  const wallDuring = wall.filter((_, i) => (scanned[i] ?? 0) > 0);
  const wallCalm = wall.filter((_, i) => (scanned[i] ?? 0) === 0);
  const side = (label: string, c: number[], w: number[]) =>
    c.length === 0
      ? `${label}: none`
      : `${label}: ${c.length}, CPU ${formatMs(median(c))} ms, wall ${formatMs(median(w))} ms`;
  return (
    `Raw clones while the kernel reclaimed memory (free ${Math.round(Math.min(...freeMb))}–${Math.round(Math.max(...freeMb))} MB ` +
    `before them) — ${side('with reclaim', during, wallDuring)}; ${side('without', calm, wallCalm)} (p50s).`
  );
}

/** Time a process spent on a CPU and waiting for one (Linux /proc/<pid>/schedstat), or undefined. */
function schedstat(pid: number | undefined): { runMs: number; waitMs: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { runMs: (run ?? 0) / 1e6, waitMs: (wait ?? 0) / 1e6 };
  } catch {
    return undefined;
  }
}

/** Where the time of a registration goes: each db-ready step, then everything else. */
function stepRows(label: string, runs: readonly Provisioned[]): Row[] {
  const rows = DB_READY_STEPS.map((name) =>
    latencyRow(
      `  ${label}: ${name}`,
      runs.map((run) => run.stepMs.get(name) ?? 0),
    ),
  );
  rows.push(
    latencyRow(
      `  ${label}: rest (hash, records, dns, ssl, commit, saga)`,
      runs.map((run) => run.totalMs - run.dbReadyMs),
    ),
  );
  return rows;
}

/** `work`, timed, with the CPU this process and PostgreSQL (from /proc) spent meanwhile, in ms. */
async function cpuDuring<T>(bench: Bench, work: () => Promise<T>) {
  const pgBefore = postgresCpu(bench.postmasterPid);
  const systemBefore = systemCpu();
  const cpuBefore = process.cpuUsage();
  const run = await timed(work);
  const cpu = process.cpuUsage(cpuBefore);
  const pg = pgCpuDelta(pgBefore, postgresCpu(bench.postmasterPid), run.ms);
  const machine = busyCores(systemBefore, systemCpu());
  const nodeMs = (cpu.user + cpu.system) / 1000;
  const pgMs = pg === undefined ? undefined : pg.total * run.ms;
  return {
    value: run.value,
    ms: run.ms,
    nodeMs,
    pgMs,
    /** Cores the rest of the machine (other processes) kept busy meanwhile. */
    otherCores: machine === undefined ? undefined : Math.max(0, machine - (nodeMs + (pgMs ?? 0)) / run.ms),
  };
}

/**
 * Five bursts of `ids.length` (C) probes at once: how long C probes take together on this
 * machine, so clinicsHealth, N ÷ C such bursts, is compared with the parallelism the machine gives.
 */
async function probeBursts(provisioning: ProvisioningService, ids: readonly string[]): Promise<number[]> {
  const bursts: number[] = [];
  for (let i = 0; i < 5; i++) {
    bursts.push((await timed(() => Promise.all(ids.map((id) => provisioning.checkClinic(id))))).ms);
  }
  return bursts;
}

/** A client backend as pg_stat_activity shows it; `app` is empty while it authenticates. */
interface Backend {
  /** The pid and the backend's start: a pid alone is reused. */
  id: string;
  app: string;
}

async function listBackends(sql: Sql): Promise<Backend[]> {
  const { rows } = await sql.query<Backend>(
    `SELECT pid || ' ' || backend_start AS id, coalesce(application_name, '') AS app FROM pg_stat_activity
      WHERE backend_type = 'client backend'`,
  );
  return rows;
}

/** Every client backend, sampled every `intervalMs` until stopped. */
function sampleBackends(sql: Sql, intervalMs: number): { stop(): Promise<Backend[][]> } {
  const samples: Backend[][] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      samples.push(await listBackends(sql));
      await sleep(intervalMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** What one sweep opened: the backends of each sample that were not open just before it. */
interface SweepBackends {
  /** Client backends open just before the sweep (every app's idle connections, this bench's own). */
  before: number;
  /** Most backends of the sweep's own at once. */
  peak: number;
  /** Those, by application_name, at that moment. */
  atPeak: Record<string, number>;
  /** Most of the sweep's probes at once (`onramp-health`, and any backend never seen named). */
  peakProbes: number;
  /** Most of the sweep's other backends at once (central connections). */
  peakOthers: number;
  /** Most client backends at once, everyone's. */
  peakAll: number;
}

/**
 * Attributes every backend a sweep's samples show that was not open before it. A backend still
 * authenticating (PostgreSQL 18 lists it without a name) gets the name the same backend (pid and
 * start) shows in a later sample; one never seen named is counted as `authenticating`.
 */
function ownBackends(before: readonly Backend[], samples: readonly Backend[][]): SweepBackends {
  const open = new Set(before.map((backend) => backend.id));
  const names = new Map<string, string>();
  for (const sample of samples)
    for (const backend of sample) if (backend.app !== '') names.set(backend.id, backend.app);
  let peak = 0;
  let peakAll = 0;
  let peakProbes = 0;
  let peakOthers = 0;
  let atPeak: Record<string, number> = {};
  for (const sample of samples) {
    peakAll = Math.max(peakAll, sample.length);
    const own = sample.filter((backend) => !open.has(backend.id));
    const probes = own.filter((backend) => PROBE_NAMES.has(names.get(backend.id) ?? 'authenticating')).length;
    peakProbes = Math.max(peakProbes, probes);
    peakOthers = Math.max(peakOthers, own.length - probes);
    if (own.length <= peak) continue;
    peak = own.length;
    atPeak = {};
    for (const backend of own) {
      const name = names.get(backend.id) ?? 'authenticating';
      atPeak[name] = (atPeak[name] ?? 0) + 1;
    }
  }
  return { before: before.length, peak, atPeak, peakProbes, peakOthers, peakAll };
}

/** A deep probe's connection (integrity.ts), or one seen only while authenticating. */
const PROBE_NAMES = new Set(['onramp-health', 'authenticating']);

function describeGroups(groups: Record<string, number>): string {
  const entries = Object.entries(groups);
  return entries.length === 0 ? 'none' : entries.map(([name, n]) => `${n} ${name}`).join(', ');
}

/** Sessions the server saw start while `work` ran (stats are flushed within a second). */
async function sessionsDuring(sql: Sql, work: () => Promise<unknown>): Promise<number> {
  const total = async () => {
    await sleep(1100);
    await sql.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await sql.query<{ n: number }>('SELECT sum(sessions)::int AS n FROM pg_stat_database');
    return rows[0]?.n ?? 0;
  };
  const before = await total();
  await work();
  return (await total()) - before;
}

/** Median time to open and close one superuser connection: the unit cost of every withClient. */
async function connectCost(serverUrl: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) samples.push((await timed(() => withClient(serverUrl, async () => {}))).ms);
  return median(samples);
}

function count<T>(items: readonly T[], predicate: (item: T) => boolean): number {
  return items.filter(predicate).length;
}

function _logError(logger: Logger, error: unknown, message: string): void {
  logger.error({ err: error }, message);
}
