/**
 * `socket`: what reaching the embedded PostgreSQL over its Unix socket saves against loopback TCP
 * (docs/decisions/069), on one server, alternating which transport goes first each round: CPU per
 * extended-protocol statement (this process, and the session's backend from /proc) and per
 * connect (this process, and the backends that ended, from the postmaster's reaped children).
 * Information rows, no targets: the suites that use the database (registration, me, otp) carry
 * the targets; this says where a difference between their runs can come from.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { databaseUrl, quoteIdent } from '../server/src/db/sql.js';
import { type BenchOptions, median, type Row, type Suite, type SuiteResult, withBenchServer } from './lib.js';

export const socket: Suite = { name: 'socket', run };

const STATEMENTS = 3000;
const CONNECTS = 60;
const ROLE = 'bench_socket_role';
const ROLE_PASSWORD = 'bench-socket-password';

/** CPU milliseconds of /proc/<pid>/stat: its own (utime + stime), or its reaped children's. */
function cpuMs(pid: number, of: 'own' | 'reaped'): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text
    .slice(text.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const [a, b] = of === 'own' ? [fields[11], fields[12]] : [fields[13], fields[14]];
  return ((a ?? 0) + (b ?? 0)) * 10; // USER_HZ is 100
}

const processMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

/** µs of CPU per statement: this process, and its session's backend. */
async function statements(url: string): Promise<{ node: number; backend: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = rows[0]?.pid as number;
    for (let i = 0; i < 200; i++) await client.query('SELECT $1::int AS x', [i]);
    const backend = cpuMs(pid, 'own');
    const node = process.cpuUsage();
    for (let i = 0; i < STATEMENTS; i++) {
      await client.query('SELECT $1::int AS x, $2::text AS y', [i, 'abc']);
    }
    return {
      node: (processMs(node) * 1000) / STATEMENTS,
      backend: ((cpuMs(pid, 'own') - backend) * 1000) / STATEMENTS,
    };
  } finally {
    await client.end();
  }
}

/** ms per connect (and one statement, then end): wall, this process, the ended backends. */
async function connects(
  url: string,
  postmaster: number,
): Promise<{ wall: number; node: number; backend: number }> {
  const reaped = cpuMs(postmaster, 'reaped');
  const node = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < CONNECTS; i++) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query('SELECT 1');
    await client.end();
  }
  const wall = performance.now() - started;
  const nodeMs = processMs(node);
  await new Promise((done) => setTimeout(done, 300)); // the last backends exit and are reaped
  return {
    wall: wall / CONNECTS,
    node: nodeMs / CONNECTS,
    backend: (cpuMs(postmaster, 'reaped') - reaped) / CONNECTS,
  };
}

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(options, async (bench) => {
    const socketDir = new URL(bench.serverUrl).searchParams.get('host');
    if (!socketDir) throw new Error('the bench server has no Unix socket (decision 069)');
    const tcp = new URL(bench.serverUrl);
    tcp.searchParams.delete('host');
    const postmaster = Number(
      readFileSync(join(bench.tmp, 'postgres', 'pg', 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    await bench.sql.query(`CREATE DATABASE bench_socket`);
    await bench.sql.query(`CREATE ROLE ${quoteIdent(ROLE)} LOGIN PASSWORD '${ROLE_PASSWORD}'`);
    const asRole = (url: string) => {
      const role = new URL(databaseUrl(url, 'bench_socket'));
      role.username = ROLE;
      role.password = ROLE_PASSWORD;
      return role.toString();
    };
    const transports = { tcp: tcp.toString(), socket: bench.serverUrl };
    type Sample = {
      statement: { node: number; backend: number };
      superuser: Awaited<ReturnType<typeof connects>>;
      role: Awaited<ReturnType<typeof connects>>;
    };
    const samples: Record<keyof typeof transports, Sample[]> = { tcp: [], socket: [] };
    const rounds = Math.max(3, Math.min(options.iterations, 6));
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['tcp', 'socket'] as const) : (['socket', 'tcp'] as const);
      for (const name of order) {
        options.log(`round ${round + 1}/${rounds}: ${name}`);
        const url = transports[name];
        samples[name].push({
          statement: await statements(url),
          superuser: await connects(url, postmaster),
          role: await connects(asRole(url), postmaster),
        });
      }
    }
    const rows: Row[] = [];
    const row = (name: string, pick: (sample: Sample) => number, unit: 'µs' | 'ms') => {
      const tcpValue = median(samples.tcp.map(pick));
      const socketValue = median(samples.socket.map(pick));
      rows.push({
        name,
        n: rounds,
        ratio: socketValue / tcpValue,
        ratioText: `${tcpValue.toFixed(unit === 'µs' ? 0 : 2)} → ${socketValue.toFixed(unit === 'µs' ? 0 : 2)} ${unit} = ${(socketValue / tcpValue).toFixed(2)}× (socket ÷ TCP)`,
      });
    };
    row(`statement: this process CPU, µs (${STATEMENTS} a round)`, (s) => s.statement.node, 'µs');
    row('statement: backend CPU, µs', (s) => s.statement.backend, 'µs');
    row(`connect superuser: wall, ms (${CONNECTS} a round)`, (s) => s.superuser.wall, 'ms');
    row('connect superuser: this process CPU, ms', (s) => s.superuser.node, 'ms');
    row('connect superuser: backend CPU, ms', (s) => s.superuser.backend, 'ms');
    row('connect clinic-like role: wall, ms', (s) => s.role.wall, 'ms');
    row('connect clinic-like role: this process CPU, ms', (s) => s.role.node, 'ms');
    row('connect clinic-like role: backend CPU, ms', (s) => s.role.backend, 'ms');
    return {
      rows,
      notes: [
        `medians of ${rounds} rounds, alternating which transport goes first; backend CPU from /proc in 10 ms ticks`,
        `load average at the end: ${readFileSync('/proc/loadavg', 'utf8').trim()}`,
      ],
      meta: { samples },
    };
  });
}
