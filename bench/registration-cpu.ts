/**
 * Where a one-client registration's CPU goes (issue 16, decision 070): not a suite, a probe.
 *
 *   pnpm --filter @onramp/server exec tsx ../bench/registration-cpu.ts [count] [profile.cpuprofile]
 *
 * One throw-away embedded PostgreSQL and the real app (as the registration suite), then `count`
 * (default 16) `registerClinic` calls over HTTP one after another, each once the warm pool is full
 * again, as the suite's "one client" rows. Over them it reads, from /proc: this process by thread
 * (the main thread, libuv's workers where argon2 hashes, V8's helpers), PostgreSQL by process
 * (sessions open before and after, sessions opened meanwhile, background processes); the
 * statements and connections of the pg clients by database, and those Prisma's engine sent. The
 * baselines beside it: a raw clone's backend CPU (WAL_LOG and FILE_COPY) and one hash's CPU.
 * With a second argument, the main thread's CPU profile over the registrations is written there
 * and summarised by part (self time by package or source folder).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import pg from 'pg';
import { poolOf } from '../server/src/db/raw.js';
import { quoteIdent } from '../server/src/db/sql.js';
import { hashPassword } from '../server/src/modules/auth/passwords.js';
import { pgCpuDelta, postgresCpu, readPostmasterPid, systemCpu } from './cpu.js';
import {
  BENCH_PASSWORD,
  median,
  registrationInput,
  removeBenchFiles,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

const count = Number(process.argv[2] ?? 16);
const profileFile = process.argv[3]?.startsWith('--') ? undefined : process.argv[3];
const TICK_MS = 10;
const log = (line: string) => process.stderr.write(`${line}\n`);

/** CPU ms of this process's threads, by thread name (/proc/self/task). */
function threadCpu(): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const text = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
      const fields = text
        .slice(text.lastIndexOf(')') + 2)
        .split(' ')
        .map(Number);
      const ms = ((fields[11] ?? 0) + (fields[12] ?? 0)) * TICK_MS;
      const key = tid === String(process.pid) ? 'main thread' : name.replace(/\d+$/, '').trim();
      out.set(key, (out.get(key) ?? 0) + ms);
    } catch {
      // ended meanwhile
    }
  }
  return out;
}

function diff(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of after) out.set(key, value - (before.get(key) ?? 0));
  return out;
}

const REGISTER = `mutation Register($input: RegisterClinicInput!) {
  registerClinic(input: $input) { __typename ... on RegisterClinicSuccess { status } ... on Error { message } }
}`;
let registered = 0;
async function register(url: string): Promise<number> {
  registered += 1;
  const input = registrationInput(`Cpu Clinic ${registered}`, `cpu+${registered}-${Date.now()}@example.com`);
  const { ms, value } = await timed(async () => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: REGISTER, variables: { input } }),
    });
    return (await response.json()) as { data?: { registerClinic?: { __typename: string; status?: string } } };
  });
  const payload = value.data?.registerClinic;
  if (payload?.__typename !== 'RegisterClinicSuccess' || payload.status !== 'READY')
    throw new Error(`registration failed: ${JSON.stringify(value).slice(0, 300)}`);
  return ms;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

/** Self time of a CPU profile by part: a package, a source folder, or V8's own (GC, program). */
function summarise(profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const node = byId.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!node) return;
    const { url, functionName } = node.callFrame;
    let part: string;
    const pkg = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (pkg) part = pkg[1] ?? url;
    else if (url.includes('/server/src/'))
      part = `src/${url.split('/server/src/')[1]?.split('/').slice(0, -1).join('/') || '.'}`;
    else if (url.includes('/bench/')) part = 'bench';
    else if (url.startsWith('node:')) part = url.split('/')[0] ?? url;
    else if (url === '') part = `(${functionName || 'native'})`;
    else part = url;
    if (part === '(idle)') return;
    total += us;
    parts.set(part, (parts.get(part) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  });
  const top = (m: Map<string, number>, n: number) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return { total, parts: top(parts, 40), functions: top(functions, 40) };
}

await withBenchServer(
  { iterations: 1, clinics: [], registrations: count, otpFlows: 0, moveRows: 0, log },
  async (server) => {
    const postmasterPid = readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid'));
    const started = await startBenchApp(server, 'bench_central_regcpu', undefined);
    const { app, url } = started;
    const [clinicServer] = app.deps.db.clinicServers;
    if (!clinicServer) throw new Error('no clinic server');
    const template = clinicServer.template.name;

    // Baselines: one hash's CPU (its thread included), a raw clone's backend CPU by strategy.
    await hashPassword(BENCH_PASSWORD);
    const hashBefore = process.cpuUsage();
    const hashWall = await timed(async () => {
      for (let i = 0; i < 10; i++) await hashPassword(BENCH_PASSWORD);
    });
    const hashCpu = process.cpuUsage(hashBefore);
    const hashCpuMs = (hashCpu.user + hashCpu.system) / 1000 / 10;
    const clones: Record<string, { p50: number; cpuMs: number }> = {};
    for (const strategy of ['WAL_LOG', 'FILE_COPY', 'WAL_LOG', 'FILE_COPY']) {
      const samples: number[] = [];
      const before = postgresCpu(postmasterPid);
      const wall = await timed(async () => {
        for (let i = 0; i < count; i++) {
          const name = `regcpu_raw_${i}`;
          samples.push(
            (
              await timed(() =>
                server.sql.query(
                  `CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)} STRATEGY ${strategy}`,
                ),
              )
            ).ms,
          );
          await server.sql.query(`DROP DATABASE ${quoteIdent(name)}`);
        }
      });
      const cpu = pgCpuDelta(before, postgresCpu(postmasterPid), wall.ms);
      clones[strategy] = {
        p50: median(samples),
        cpuMs: cpu ? (cpu.total * wall.ms) / count : Number.NaN,
      };
      log(
        `raw clone ${strategy}: p50 ${median(samples).toFixed(1)} ms, PostgreSQL CPU ${clones[strategy]?.cpuMs.toFixed(1)} ms per clone + drop ` +
          `(${[...(cpu?.parts ?? [])].map(([k, v]) => `${k} ${((v * wall.ms) / count).toFixed(1)}`).join(', ')})`,
      );
    }

    // One statement's CPU by path, on the app's central client: Prisma's engine (a raw statement,
    // and a typed read) and the pool under it (db/raw.ts), each 400 times one after another.
    const prisma = app.deps.db.prisma;
    const pool = poolOf(prisma);
    const paths: [string, () => Promise<unknown>][] = [
      ['pg pool', async () => pool?.query('SELECT 1')],
      ['Prisma $queryRaw', async () => prisma.$queryRaw`SELECT 1`],
      [
        'Prisma findFirst',
        async () => prisma.user.findFirst({ where: { email: 'nobody@example.com' }, select: { id: true } }),
      ],
      ['Prisma $transaction of 2', async () => prisma.$transaction(async (tx) => tx.$queryRaw`SELECT 1`)],
    ];
    for (const [name, once] of [...paths, ...paths]) {
      for (let i = 0; i < 50; i++) await once();
      const nodeBefore = process.cpuUsage();
      const before = postgresCpu(postmasterPid);
      const wall = await timed(async () => {
        for (let i = 0; i < 400; i++) await once();
      });
      const node = process.cpuUsage(nodeBefore);
      const cpu = pgCpuDelta(before, postgresCpu(postmasterPid), wall.ms);
      log(
        `statement via ${name}: node ${((node.user + node.system) / 400).toFixed(0)} µs + PostgreSQL ${cpu ? ((cpu.total * wall.ms * 1000) / 400).toFixed(0) : '?'} µs CPU, ${((wall.ms * 1000) / 400).toFixed(0)} µs wall`,
      );
    }

    for (let i = 0; i < 2; i++) {
      await register(url);
      await app.deps.provisioning.pool.idle();
    }

    const central = new URL(app.deps.config.databaseUrl ?? '').pathname.slice(1);
    const statements = new Map<string, number>();
    const connects = new Map<string, number>();
    const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
    /** Which database a client talks to: the central one, a clinic's, a spare, or its name. */
    const kindOf = (database: string | undefined) =>
      database === central
        ? 'central'
        : database?.startsWith('clinic')
          ? 'clinic'
          : database?.startsWith('onramp_spare')
            ? 'spare'
            : (database ?? '?');
    const query = pg.Client.prototype.query;
    const connect = pg.Client.prototype.connect;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const db = kindOf(this.database);
      const first = args[0] as { rowMode?: string; text?: string } | string;
      const text = typeof first === 'string' ? first : (first.text ?? '');
      bump(
        statements,
        `${db}${typeof first !== 'string' && first.rowMode === 'array' ? ' (engine)' : ''}${text.startsWith('SELECT pg_notify(') ? ' notify' : ''}`,
      );
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
    pg.Client.prototype.connect = function (this: pg.Client, ...args: unknown[]) {
      const db = kindOf(this.database);
      bump(connects, db);
      if (process.argv.includes('--stacks'))
        log(`connect ${db} ${this.user}: ${new Error().stack?.split('\n').slice(2, 14).join(' | ')}`);
      return (connect as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof connect;

    const session = new Session();
    if (profileFile) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
    }
    const threadsBefore = threadCpu();
    const pgBefore = postgresCpu(postmasterPid);
    const sysBefore = systemCpu();
    const samples: number[] = [];
    const wall = await timed(async () => {
      for (let i = 0; i < count; i++) {
        samples.push(await register(url));
        await app.deps.provisioning.pool.idle();
      }
    });
    const threads = diff(threadCpu(), threadsBefore);
    const pgCpu = pgCpuDelta(pgBefore, postgresCpu(postmasterPid), wall.ms);
    const sysAfter = systemCpu();
    pg.Client.prototype.query = query;
    pg.Client.prototype.connect = connect;

    let profileSummary: ReturnType<typeof summarise> | undefined;
    if (profileFile) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(profileFile, JSON.stringify(profile));
      profileSummary = summarise(profile as never);
      session.disconnect();
    }

    const per = (ms: number) => (ms / count).toFixed(1);
    const nodeMs = [...threads.values()].reduce((a, b) => a + b, 0);
    const pgMs = pgCpu ? pgCpu.total * wall.ms : Number.NaN;
    const otherCores =
      sysBefore && sysAfter
        ? ((sysAfter.busy - sysBefore.busy) / 100 - (nodeMs + pgMs) / 1000) / (wall.ms / 1000)
        : Number.NaN;
    const lines = [
      `load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; other processes ${otherCores.toFixed(2)} cores`,
      `${count} registrations, one client, pool warm: p50 ${median(samples).toFixed(1)} ms (wall ${(wall.ms / count).toFixed(1)} ms each with the refill)`,
      `one hash: ${hashCpuMs.toFixed(1)} ms CPU (${(hashWall.ms / 10).toFixed(1)} ms wall)`,
      `raw clone: ${Object.entries(clones)
        .map(([k, v]) => `${k} p50 ${v.p50.toFixed(1)} ms / ${v.cpuMs.toFixed(1)} ms CPU`)
        .join('; ')}`,
      `CPU per registration: ${per(nodeMs + pgMs)} ms = node ${per(nodeMs)} + PostgreSQL ${per(pgMs)}`,
      `  node by thread: ${[...threads]
        .filter(([, v]) => v > 0)
        .map(([k, v]) => `${k} ${per(v)}`)
        .join(', ')}`,
      `  PostgreSQL by process: ${[...(pgCpu?.parts ?? [])].map(([k, v]) => `${k} ${per(v * wall.ms)}`).join(', ')}`,
      `statements per registration: ${[...statements].map(([k, v]) => `${k} ${per(v)}`).join(', ')}`,
      `connections per registration: ${[...connects].map(([k, v]) => `${k} ${per(v)}`).join(', ')}`,
    ];
    if (profileSummary) {
      const { total, parts, functions } = profileSummary;
      lines.push(`main thread profile: ${per(total / 1000)} ms busy per registration; self time by part:`);
      for (const [part, us] of parts)
        lines.push(
          `  ${per(us / 1000).padStart(6)} ms  ${((us / total) * 100).toFixed(1).padStart(5)} %  ${part}`,
        );
      lines.push('top functions:');
      for (const [fn, us] of functions) lines.push(`  ${per(us / 1000).padStart(6)} ms  ${fn}`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  },
);
// Its server's files (on a tmpfs they hold memory until a reboot).
removeBenchFiles(log);
