// TCP vs Unix socket to one embedded PostgreSQL: CPU per statement (this process + its backend, /proc)
// and wall/CPU per connect, alternating in rounds.
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from './src/db/embedded.js';
import { createLogger } from './src/logger.js';
import { databaseUrl } from './src/db/sql.js';

const ticks = (pid: number) => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10; // ms (USER_HZ 100)
};
const tmp = mkdtempSync(join(tmpdir(), 'sockmicro-'));
chmodSync(tmp, 0o711);
const server = await startEmbeddedPostgres({ dir: join(tmp, 'pg'), logger: createLogger({ env: 'test', logLevel: 'error' }), ephemeral: true });
const sock = server.url;
const tcpU = new URL(sock); tcpU.searchParams.delete('host'); const tcp = tcpU.toString();
const admin = new pg.Client({ connectionString: sock }); await admin.connect();
await admin.query(`CREATE DATABASE clinicx`).catch(() => {});
await admin.query(`CREATE ROLE clinicrole LOGIN PASSWORD 'pw-pw-pw'`).catch(() => {});
const roleUrl = (base: string) => { const u = new URL(databaseUrl(base, 'clinicx')); u.username = 'clinicrole'; u.password = 'pw-pw-pw'; return u.toString(); };
const N = Number(process.env.N ?? 4000), C = Number(process.env.C ?? 100);
const stmts = async (url: string) => {
  const c = new pg.Client({ connectionString: url }); await c.connect();
  const { rows } = await c.query('SELECT pg_backend_pid() AS pid'); const pid = rows[0].pid;
  for (let i = 0; i < 200; i++) await c.query('SELECT $1::int AS x', [i]);
  const b0 = ticks(pid), u0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < N; i++) await c.query({ text: 'SELECT $1::int AS x, $2::text AS y', values: [i, 'abc'] });
  const wall = performance.now() - t0, u = process.cpuUsage(u0), b = ticks(pid) - b0;
  await c.end();
  return { wallUs: (wall * 1000) / N, nodeUs: ((u.user + u.system)) / N, backendUs: (b * 1000) / N };
};
const postmaster = Number(readFileSync(join(tmp, 'pg', 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
const reaped = () => {
  const s = readFileSync(`/proc/${postmaster}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
};
const connects = async (url: string) => {
  const p0 = reaped();
  const u0 = process.cpuUsage(), t0 = performance.now();
  for (let i = 0; i < C; i++) { const c = new pg.Client({ connectionString: url }); await c.connect(); await c.query('SELECT 1'); await c.end(); }
  const wall = performance.now() - t0, u = process.cpuUsage(u0);
  await new Promise((d) => setTimeout(d, 300));
  return { wallMs: wall / C, nodeMs: (u.user + u.system) / 1000 / C, backendMs: (reaped() - p0) / C };
};
const rounds = Number(process.env.R ?? 3);
const out: Record<string, unknown[]> = {};
const put = (k: string, v: unknown) => (out[k] ??= []).push(v);
for (let r = 0; r < rounds; r++) {
  for (const [name, url] of (r % 2 ? [['socket', sock], ['tcp', tcp]] : [['tcp', tcp], ['socket', sock]]) as [string, string][]) {
    put(`${name} statement`, await stmts(url));
    put(`${name} connect superuser`, await connects(url));
    put(`${name} connect clinic role`, await connects(roleUrl(url)));
  }
  console.error(`round ${r + 1} ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
}
console.log(JSON.stringify(out, null, 1));
await admin.end(); await server.stop(); rmSync(tmp, { recursive: true, force: true });
