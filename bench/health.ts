/**
 * The `health` suite: the two-tier clinic health of docs/decisions/051 at fleet sizes.
 * Clinics are fabricated cheaply — a LOGIN role on the bench server, central company and clinic
 * rows, and for the first REAL_DATABASES an empty database (from template0) — since a full
 * registration per clinic would take most of an hour at 2,000. The others have no database:
 * the catalog answers MISSING for them as fast as PRESENT, and recorded MISSING they cost a
 * steady sweep the same as a present one (bench/README.md says why not 2,000 real databases).
 * The sizes are max(BENCH_CLINICS) and twice that (1,000 and 2,000 by default, 20 and 40 in
 * CI's smoke run).
 */
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { App } from '../server/src/app.js';
import { encryptSecret } from '../server/src/crypto.js';
import { quoteIdent } from '../server/src/db/sql.js';
import { COMPARE_WITH_CATALOG, readCatalogLists } from '../server/src/modules/health/catalog.js';
import { ClinicHealthMonitor } from '../server/src/modules/health/clinics.js';
import { pgCpuDelta, postgresCpu, readPostmasterPid } from './cpu.js';
import {
  type BenchOptions,
  type BenchServer,
  judge,
  latencyRow,
  type Row,
  type Suite,
  type SuiteResult,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

// `ws` is the server's dependency; resolved from there, the bench needs no copy of its own.
const require = createRequire(new URL('../server/package.json', import.meta.url));
const WebSocket = require('ws') as new (
  url: string,
  protocol: string,
) => {
  on(event: 'open' | 'error' | 'message', listener: (data: unknown) => void): void;
  send(data: string): void;
  close(): void;
};

const CENTRAL = 'bench_central_health';
/** The defaults of CLINIC_HEALTH_INTERVAL_SECONDS and CLINIC_DEEP_CHECK_PERIOD. */
const INTERVAL_SECONDS = 4;
const DEEP_PERIOD_SECONDS = 600;
const FABRICATE_CONCURRENCY = 4;
/**
 * Empty databases made at most. Each costs ~7.5 MB and ~300 files, and dropping them is slow on
 * a disk mounted with online discard (2,000 took over 40 minutes to remove here).
 */
const REAL_DATABASES = 300;
const MISSING_SAMPLES_MAX = 5;

const TARGETS = {
  shallow: { op: '<=', value: 1, text: '≤ 50 ms' },
  shallowGrowth: { op: '<=', value: 2.5, text: '≤ 2.5× (no worse than linear)' },
  cpu: { op: '<=', value: 0.05, text: '≤ 5% of one core' },
  missing: { op: '<=', value: 1, text: '≤ 5 s' },
} as const;

export const health: Suite = { name: 'health', run };

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(options, (server) => measure(options, server), { clinicDatabases: REAL_DATABASES });
}

async function measure(options: BenchOptions, server: BenchServer): Promise<SuiteResult> {
  const top = Math.max(...options.clinics);
  const sizes = [top, 2 * top];
  const postmasterPid = readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid'));
  options.log('starting the app (no background health work: the suite drives the sweeps)');
  const { app } = await startBenchApp(server, CENTRAL, 0);
  const monitor = benchMonitor(app);
  const rows: Row[] = [];
  const notes: string[] = [];
  const shallowP50 = new Map<number, number>();
  const runs = Math.max(5, options.iterations);

  for (const size of sizes) {
    const made = await timed(() => fabricate(server, app, size, options));
    notes.push(
      `${size} clinics fabricated in ${(made.ms / 1000).toFixed(1)} s (roles, central rows, and an empty database for the first ${Math.min(size, REAL_DATABASES)}).`,
    );
    await monitor.checkAll(); // every clinic recorded once, as a running system has them
    await monitor.shallowSweep(); // untimed warm-up
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) samples.push((await timed(() => monitor.shallowSweep())).ms);
    const row = latencyRow(`shallow sweep, ${size} clinics`, samples);
    notes.push(await sweepParts(app, size, runs));
    shallowP50.set(size, row.p50Ms as number);
    rows.push(
      judge({
        ...row,
        ratio: (row.p50Ms as number) / 50,
        ratioText: `${((row.p50Ms as number) / 50).toFixed(2)}× 50 ms`,
        target: TARGETS.shallow,
      }),
    );
  }
  const [small, large] = sizes as [number, number];
  const growth = (shallowP50.get(large) as number) / (shallowP50.get(small) as number);
  rows.push(
    judge({
      name: `shallow sweep, ${large} vs ${small} clinics`,
      n: large,
      ratio: growth,
      ratioText: `${growth.toFixed(2)}×`,
      target: TARGETS.shallowGrowth,
    }),
  );

  const cpu = await steadyCpu(app, large, postmasterPid, options);
  rows.push(cpu.row);
  notes.push(...cpu.notes);

  const missing = await missingLatency(server, app, options);
  rows.push(missing.row);
  notes.push(...missing.notes);
  await monitor.close();
  return {
    rows,
    notes,
    meta: { sizes, intervalSeconds: INTERVAL_SECONDS, deepPeriodSeconds: DEEP_PERIOD_SECONDS },
  };
}

/** Where a shallow sweep's time goes: its catalog query and its central comparison, timed alone. */
async function sweepParts(app: App, size: number, runs: number): Promise<string> {
  const { db, provisioning } = app.deps;
  const [serverId, server] = [...provisioning.integrity.servers][0] ?? [];
  if (!server || !serverId) return 'no clinic server to time the sweep parts on.';
  const catalog: number[] = [];
  const central: number[] = [];
  for (let i = 0; i < runs; i++) {
    const lists = await timed(() => readCatalogLists(server));
    catalog.push(lists.ms);
    const { databases, allowsConnections, roles, canLogin } = lists.value;
    central.push(
      (
        await timed(() =>
          db.pool.query(COMPARE_WITH_CATALOG, [
            serverId,
            databases,
            allowsConnections,
            roles,
            canLogin,
            true,
            false,
          ]),
        )
      ).ms,
    );
  }
  const p50 = (samples: number[]) => (latencyRow('', samples).p50Ms as number).toFixed(1);
  return `shallow sweep at ${size} clinics, its parts alone (p50 of ${runs}): catalog query ${p50(catalog)} ms, central comparison ${p50(central)} ms; the rest is the health_sweeps write and the lease-free bookkeeping.`;
}

/** A monitor of the app's clinics with the default pace, driven by the suite. */
function benchMonitor(
  app: App,
  intervalSeconds = INTERVAL_SECONDS,
  deepPeriodSeconds = DEEP_PERIOD_SECONDS,
): ClinicHealthMonitor {
  const { provisioning, db, logger, metrics, config } = app.deps;
  return new ClinicHealthMonitor({
    prisma: db.prisma,
    pool: db.pool,
    logger,
    metrics,
    integrity: provisioning.integrity,
    concurrency: config.clinicHealthConcurrency,
    intervalSeconds,
    deepPeriodSeconds,
    refreshServers: async () => {},
    publish: () => {},
    onMissing: async () => {},
  });
}

/** Tops the app up to `size` READY clinics with a LOGIN role each, the first REAL_DATABASES with an empty database. */
async function fabricate(server: BenchServer, app: App, size: number, options: BenchOptions): Promise<void> {
  const { prisma } = app.deps.db;
  const have = await prisma.clinic.count();
  const serverId = [...app.deps.provisioning.integrity.servers.keys()][0] as string;
  const password = `bench-${randomUUID()}`;
  const key = app.deps.config.encryptionKey;
  const ids = Array.from({ length: size - have }, () => randomUUID());
  const real = ids.slice(0, Math.max(0, REAL_DATABASES - have));
  options.log(`fabricating clinics ${have + 1}–${size}`);
  // Roles first, in batches (one statement each); databases one by one (CREATE DATABASE runs alone).
  for (let i = 0; i < ids.length; i += 200) {
    const batch = ids.slice(i, i + 200);
    await server.sql.query(
      batch.map((id) => `CREATE ROLE ${quoteIdent(roleOf(id))} LOGIN PASSWORD '${password}';`).join('\n'),
    );
  }
  let done = 0;
  const queue = [...real];
  await Promise.all(
    Array.from({ length: FABRICATE_CONCURRENCY }, async () => {
      const client = new pg.Client({ connectionString: server.serverUrl });
      await client.connect();
      try {
        for (let id = queue.shift(); id; id = queue.shift()) {
          await client.query(`CREATE DATABASE ${quoteIdent(databaseOf(id))} TEMPLATE template0`);
          done += 1;
          if (done % 100 === 0) options.log(`  ${have + done} databases`);
        }
      } finally {
        await client.end();
      }
    }),
  );
  for (let i = 0; i < ids.length; i += 500) {
    const batch = ids.slice(i, i + 500);
    const companies = await prisma.company.createManyAndReturn({
      data: batch.map((id) => ({ name: `Bench ${id.slice(0, 8)}` })),
      select: { id: true },
    });
    await prisma.clinic.createMany({
      data: batch.map((id, index) => ({
        id,
        companyId: companies[index]?.id as string,
        name: `Bench ${id.slice(0, 8)}`,
        country: 'FR',
        subdomain: `bench-${id.slice(0, 8)}-${id.slice(9, 13)}`,
        status: 'READY' as const,
        databaseName: databaseOf(id),
        databaseServerId: serverId,
        databaseRole: roleOf(id),
        databasePasswordEnc: encryptSecret(password, key, id),
        // Up to date, so the upgrade at an app's start leaves these empty databases alone.
        schemaVersion: app.deps.provisioning.integrity.version,
      })),
    });
  }
}

const databaseOf = (id: string) => `clinic_bench_${id.replaceAll('-', '')}`;
const roleOf = (id: string) => `clinic_role_bench_${id.replaceAll('-', '')}`;

/**
 * CPU of the background health work at `size` clinics in steady state: deep checks recorded
 * evenly over the last deep period, then sweeps back to back — each is one period's work (the
 * shallow sweep and that period's share of deep checks) — timed by /proc for this process and
 * the PostgreSQL server. CPU per period ÷ the period is the share of one core.
 */
async function steadyCpu(app: App, size: number, postmasterPid: number | undefined, options: BenchOptions) {
  const { prisma } = app.deps.db;
  // The deep checks of `size` clinics per sweep, from the clinics with a database: the monitor
  // shares the period among those present, so a period shortened by present ÷ size gives each
  // sweep size × interval ÷ 600 s checks, as a fleet of `size` real databases would.
  const present = await prisma.clinicHealthRecord.count({ where: { shallow: 'PRESENT' } });
  const period = (DEEP_PERIOD_SECONDS * present) / size;
  // Every present clinic due (checked over half a period ago), oldest first.
  await prisma.$executeRaw`
    UPDATE clinic_health SET deep_checked_at = now() - make_interval(secs => ${period} * (1 + random()))
     WHERE shallow = 'PRESENT'`;
  const monitor = benchMonitor(app, INTERVAL_SECONDS, period);
  const ticks = Math.max(3, Math.min(options.iterations, 12));
  await monitor.tick(); // warm-up
  const nodeBefore = process.cpuUsage();
  const pgBefore = postgresCpu(postmasterPid);
  const wall = await timed(async () => {
    for (let i = 0; i < ticks; i++) await monitor.tick();
  });
  const node = process.cpuUsage(nodeBefore);
  const pg = pgCpuDelta(pgBefore, postgresCpu(postmasterPid), wall.ms);
  await monitor.close();
  const nodeSeconds = (node.user + node.system) / 1e6;
  const pgSeconds = pg ? (pg.total * wall.ms) / 1000 : 0;
  const perPeriod = (nodeSeconds + pgSeconds) / ticks;
  const share = perPeriod / INTERVAL_SECONDS;
  const deepPerTick = Math.ceil((present * INTERVAL_SECONDS) / period);
  return {
    row: judge({
      name: `steady-state health CPU, ${size} clinics`,
      n: ticks,
      p50Ms: (wall.ms / ticks) as number,
      ratio: share,
      ratioText: `${(share * 100).toFixed(1)}% of a core`,
      target: TARGETS.cpu,
    }),
    notes: [
      `steady state at ${size} clinics: a sweep every ${INTERVAL_SECONDS} s with ${deepPerTick} deep checks ` +
        `(every clinic within ${DEEP_PERIOD_SECONDS} s); per sweep ${(perPeriod * 1000).toFixed(1)} ms of CPU: ` +
        `this process ${((nodeSeconds / ticks) * 1000).toFixed(1)} ms, PostgreSQL ${((pgSeconds / ticks) * 1000).toFixed(1)} ms` +
        (pg ? '' : ' (PostgreSQL not measured: no /proc)') +
        `; p50 column = wall time of one sweep (deep checks of the ${present} clinics with a database, on a period of ${period.toFixed(0)} s).`,
    ],
  };
}

/**
 * A database dropped from outside, timed from the DROP's end to the clinicHealthChanged event
 * on a super-admin's WebSocket subscription, with a second app on the same central database
 * sweeping in the background at the default interval (the first one does no background work).
 */
async function missingLatency(server: BenchServer, first: App, options: BenchOptions) {
  const { app, url } = await startBenchApp(server, CENTRAL, 0, {
    CLINIC_HEALTH_INTERVAL_SECONDS: String(INTERVAL_SECONDS),
  });
  const adminUser = await app.deps.db.prisma.user.findUniqueOrThrow({
    where: { email: app.deps.config.adminEmail },
  });
  const session = await app.deps.auth.startSession(adminUser.id, { ip: '127.0.0.1' }, 'bench');
  const events = await subscribeHealth(url, `Bearer ${session.accessToken}`);
  const victims = await first.deps.db.prisma.clinic.findMany({
    where: { health: { is: { shallow: 'PRESENT' } } },
    take: Math.min(options.iterations, MISSING_SAMPLES_MAX),
    select: { id: true, databaseName: true },
  });
  const samples: number[] = [];
  try {
    for (const [index, victim] of victims.entries()) {
      options.log(`dropping a clinic database from outside, ${index + 1}/${victims.length}`);
      // A drop at a random moment of the sweep's period, as a real one would be: right after an
      // event the next sweep is a whole period away, which would time the worst case every time.
      await sleep(Math.random() * INTERVAL_SECONDS * 1000);
      const seen = events.next((event) => event.clinicId === victim.id && event.dbStatus === 'MISSING');
      await server.sql.query(`DROP DATABASE ${quoteIdent(victim.databaseName)} WITH (FORCE)`);
      const dropped = performance.now();
      await seen;
      samples.push(performance.now() - dropped);
    }
  } finally {
    events.close();
  }
  const row = latencyRow('dropped database shown MISSING to a subscriber', samples);
  return {
    row: judge({
      ...row,
      ratio: (row.p95Ms as number) / 5000,
      ratioText: `p95 ${((row.p95Ms as number) / 1000).toFixed(2)} s`,
      target: TARGETS.missing,
    }),
    notes: [
      `MISSING is seen by the next shallow sweep: on average half an interval (${INTERVAL_SECONDS} s) after the drop, at most one interval plus the sweep ` +
        `(max here ${((Math.max(...samples) || 0) / 1000).toFixed(2)} s); the drops come at random moments of the period, and the row judges p95.`,
    ],
  };
}

interface HealthEvent {
  clinicId: string;
  dbStatus: string;
}

/** A `clinicHealthChanged` subscription over graphql-transport-ws, spoken directly. */
async function subscribeHealth(url: string, authorization: string) {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const waiters: { match: (event: HealthEvent) => boolean; resolve: () => void }[] = [];
  await new Promise<void>((resolve, reject) => {
    socket.on('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization } })),
    );
    socket.on('error', reject);
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as {
        type: string;
        payload?: { data?: { clinicHealthChanged?: HealthEvent } };
      };
      if (message.type === 'connection_ack') {
        socket.send(
          JSON.stringify({
            id: '1',
            type: 'subscribe',
            payload: { query: 'subscription { clinicHealthChanged { clinicId dbStatus } }' },
          }),
        );
        resolve();
      }
      const event = message.payload?.data?.clinicHealthChanged;
      if (message.type === 'next' && event)
        for (const waiter of waiters.splice(0))
          if (waiter.match(event)) waiter.resolve();
          else waiters.push(waiter);
    });
  });
  return {
    next: (match: (event: HealthEvent) => boolean) =>
      new Promise<void>((resolve) => waiters.push({ match, resolve })),
    close: () => socket.close(),
  };
}
