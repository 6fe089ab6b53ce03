/**
 * The embedded PostgreSQL used when no DATABASE_URL is configured: a real server whose files
 * live in the data dir and survive restarts.
 *
 * One process owns it: the one that started (or adopted) it, named in `owner.json` beside the
 * cluster (pid, port, start time, command). Any other Onramp process on the same data dir (a
 * second `pnpm start`, `pnpm clinics:migrate`, a bench) connects to the owner's server as a
 * client, or refuses naming the owner; it never stops, restarts or re-ports it. A record whose
 * process is gone is recovered: its still-running server is adopted as it is (same port, open
 * connections untouched); only a server nobody owns that does not answer is shut down.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from '../logger.js';
import { freePort, onFreePort } from '../ports.js';
import {
  answeringDataDirectory,
  blockingDirectory,
  initdb,
  isAlive,
  postgresBinaries,
  postgresUser,
  reachableBy,
  runningPostmaster,
  SYSTEM_DIR,
  startPostmaster,
  stopPostmaster,
} from './postgres-process.js';

export interface EmbeddedPostgresOptions {
  /** Directory holding the cluster (`<dir>/pg`), its settings (`embedded.json`) and its owner (`owner.json`). */
  dir: string;
  logger: Logger;
  /**
   * Trade durability for speed: fsync and synchronous commit off. For throw-away test clusters only.
   * @default false
   */
  ephemeral?: boolean;
  /** @default 200 */
  maxConnections?: number;
  /**
   * When another live process owns the server: `join` connects to it as a client (its `stop()`
   * then leaves the server running); `refuse` throws {@link EmbeddedPostgresInUse}.
   * @default 'join'
   */
  whenOwned?: 'join' | 'refuse';
  /**
   * Addresses to listen on besides 127.0.0.1, each with the clients it accepts (a CIDR, password
   * logins in pg_hba.conf): for tests that reach the server from another network namespace (a
   * veth's host end, and its peer's network).
   * @default []
   */
  listenOn?: { address: string; clients: string }[];
}

export interface RunningPostgres {
  /** Superuser URL of the `postgres` database; over the server's Unix socket when it has one (decision 069). */
  url: string;
  /** The other process that owns the server, when this one joined it; undefined when we own it. */
  owner?: OwnerRecord;
  /** The postmaster's pid when we own the server (CPU accounting); undefined when joined. */
  pid?: number;
  /** Stops the server when we own it; a joined client only lets go. */
  stop(): Promise<void>;
}

/** `owner.json`: who runs the cluster's server. */
export interface OwnerRecord {
  pid: number;
  port: number;
  startedAt: string;
  command: string;
  /** Kernel start time of `pid` (Linux), so that a recycled pid is not taken for the owner. */
  processStart?: string;
}

/** Another live process owns the embedded PostgreSQL of this data dir. */
export class EmbeddedPostgresInUse extends Error {
  constructor(
    readonly dir: string,
    readonly owner: OwnerRecord,
    answering: boolean,
  ) {
    super(
      `the embedded PostgreSQL in ${dir} belongs to another running Onramp process: pid ${owner.pid} ` +
        `(${owner.command}), started ${owner.startedAt}, port ${owner.port}` +
        (answering ? '' : ', which does not answer yet') +
        `. Stop that process first (kill ${owner.pid}), or give this one its own ONRAMP_DATA_DIR.`,
    );
    this.name = 'EmbeddedPostgresInUse';
  }
}

interface Settings {
  port: number;
  password: string;
  /**
   * Where the cluster lives when not in `<dir>/pg`: as root, when the `postgres` user cannot
   * reach the data dir (see {@link clusterLocation}).
   */
  clusterDir?: string;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const { dir, logger } = options;
  mkdirSync(dir, { recursive: true });
  const runAs = postgresUser();
  // As root, PostgreSQL runs as the `postgres` user, which must be able to reach its directory.
  if (runAs) chmodSync(dir, 0o711);
  let settings = loadSettings(dir);
  const clusterDir = clusterLocation(dir, settings, runAs);
  if (clusterDir !== (settings.clusterDir ?? join(dir, 'pg'))) {
    settings = { ...settings, clusterDir };
    saveSettings(dir, settings);
    logger.info(
      { dir: clusterDir },
      `the postgres user cannot reach ${dir}; the embedded PostgreSQL cluster lives in ${clusterDir} (recorded in embedded.json)`,
    );
  }
  const socketDir = socketDirectory(clusterDir);
  const urlOf = (port: number) => serverUrl(settings.password, port, socketDir);

  const claim = await claimOwnership(dir, clusterDir, settings, options.whenOwned ?? 'join', logger);
  if ('owner' in claim) {
    logger.info(
      { pid: claim.owner.pid, port: claim.owner.port },
      'embedded PostgreSQL is run by another Onramp process; connecting to it as a client',
    );
    return { url: urlOf(claim.owner.port), owner: claim.owner, stop: async () => {} };
  }

  let postmaster: { pid: number; port: number };
  try {
    postmaster =
      (await adoptOrphan(clusterDir, settings, logger)) ??
      (await startServer({ ...options, clusterDir, socketDir, settings, runAs }));
  } catch (error) {
    claim.release();
    throw error;
  }
  claim.record(postmaster.port);
  if (postmaster.port !== settings.port) saveSettings(dir, { ...settings, port: postmaster.port });

  let stopped: Promise<void> | undefined;
  return {
    url: urlOf(postmaster.port),
    pid: postmaster.pid,
    stop: () => {
      stopped ??= stopPostmaster(postmaster.pid).then(() => {
        claim.release();
        logger.info('embedded PostgreSQL stopped');
      });
      return stopped;
    },
  };
}

interface StartServerOptions extends EmbeddedPostgresOptions {
  clusterDir: string;
  socketDir: string | undefined;
  settings: Settings;
  runAs: ReturnType<typeof postgresUser>;
}

async function startServer(options: StartServerOptions): Promise<{ pid: number; port: number }> {
  const { clusterDir, socketDir, settings, runAs, logger } = options;
  const binDir = join(postgresBinaries(runAs), 'bin');
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) {
    logger.info({ dir: clusterDir }, 'initialising embedded PostgreSQL');
    rmSync(clusterDir, { recursive: true, force: true });
    mkdirSync(clusterDir, { recursive: true, mode: 0o700 });
    if (runAs) chownSync(clusterDir, runAs.uid, runAs.gid);
    initdb({ binDir, clusterDir, password: settings.password, runAs });
  }
  const listenOn = options.listenOn ?? [];
  if (listenOn.length > 0)
    acceptClients(
      clusterDir,
      listenOn.map((listen) => listen.clients),
    );
  if (socketDir) {
    mkdirSync(socketDir, { recursive: true, mode: 0o700 });
    if (runAs) chownSync(socketDir, runAs.uid, runAs.gid);
  }
  const serverSettings: Record<string, string> = {
    // TCP stays for external tools and the ownership checks; Onramp itself uses the socket.
    listen_addresses: ['127.0.0.1', ...listenOn.map((listen) => listen.address)].join(','),
    // The cluster's own socket directory, never /tmp: two clusters on one machine must not
    // collide on /tmp/.s.PGSQL.<port> (docs/decisions/069).
    unix_socket_directories: socketDir ?? '',
    max_connections: String(options.maxConnections ?? 200),
    // A clinic database moves to another server by logical replication (docs/decisions/049).
    wal_level: 'logical',
    ...(options.ephemeral ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
  };
  // A port free when chosen may be taken before the postmaster binds it: then another one.
  return onFreePort(
    async (port) => {
      try {
        const pid = await startPostmaster({
          binDir,
          clusterDir,
          port,
          password: settings.password,
          settings: serverSettings,
          logFile: join(options.dir, 'postgres.log'),
          runAs,
        });
        logger.info({ port, dir: clusterDir }, 'embedded PostgreSQL started');
        return { pid, port };
      } catch (error) {
        throw new Error(
          `embedded PostgreSQL did not start in ${clusterDir} on port ${port}: ${(error as Error).message}`,
        );
      }
    },
    await choosePort(settings.port, options.dir, logger),
    (port) =>
      logger.warn({ port }, `port ${port} was taken as the embedded PostgreSQL started; trying another`),
  );
}

/** Adds a password login line to pg_hba.conf for each network not in it yet (the file stays the postgres user's). */
function acceptClients(clusterDir: string, networks: string[]): void {
  const file = join(clusterDir, 'pg_hba.conf');
  const hba = readFileSync(file, 'utf8');
  const lines = networks
    .map((network) => `host all all ${network} scram-sha-256`)
    .filter((line) => !hba.includes(line));
  if (lines.length > 0) appendFileSync(file, `${lines.join('\n')}\n`);
}

/**
 * The superuser URL of the server on `port`: over its Unix socket when the socket is there (a
 * server started before 069, or adopted from one, has none and is reached over TCP). The socket
 * travels as libpq's `host` parameter, which pg, Prisma's pg adapter and psql all honour, so
 * every URL derived from this one (clinic databases, roles, replication) keeps it, and its
 * `host:port` still names the server.
 */
function serverUrl(password: string, port: number, socketDir: string | undefined): string {
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  if (!socketDir || !existsSync(join(socketDir, `.s.PGSQL.${port}`))) return url;
  return `${url}?host=${encodeURIComponent(socketDir)}`;
}

/**
 * The directory of the cluster's Unix socket, beside the cluster and only its server's (each
 * cluster its own: no two servers share a lock file or a socket name). Undefined, and TCP only,
 * when the socket's path would not fit a socket address (107 bytes) or the path holds a character
 * PostgreSQL's list of directories would misread.
 */
function socketDirectory(clusterDir: string): string | undefined {
  const dir = `${clusterDir}-socket`;
  if (/[,\\\s'"]/.test(dir)) return undefined;
  return Buffer.byteLength(join(dir, '.s.PGSQL.65535')) <= 107 ? dir : undefined;
}

/**
 * A server still running on the cluster while no live process owns it (its owner was killed) is
 * adopted when it answers as ours; one that does not answer is shut down so we can start afresh.
 */
async function adoptOrphan(
  clusterDir: string,
  settings: Settings,
  logger: Logger,
): Promise<{ pid: number; port: number } | undefined> {
  const running = runningPostmaster(clusterDir);
  if (!running) {
    if (existsSync(join(clusterDir, 'postmaster.pid'))) {
      logger.info('removing the PostgreSQL lock file left by a crash');
      rmSync(join(clusterDir, 'postmaster.pid'), { force: true });
    }
    return undefined;
  }
  if (await servesCluster(running.port, settings.password, clusterDir)) {
    logger.info(
      { pid: running.pid, port: running.port },
      'adopting the embedded PostgreSQL left running by a process that is gone',
    );
    return running;
  }
  logger.warn({ pid: running.pid }, 'an unowned embedded PostgreSQL does not answer; shutting it down');
  await stopPostmaster(running.pid, { graceMs: 0, timeoutMs: 30_000 });
  rmSync(join(clusterDir, 'postmaster.pid'), { force: true });
  return undefined;
}

type Claim = { owner: OwnerRecord } | { record(port: number): void; release(): void };

/**
 * Takes `owner.json` atomically (a hard link fails when the file exists), or finds its live owner.
 * A live owner's server gets a while to answer (it may be initialising); we never touch it.
 */
async function claimOwnership(
  dir: string,
  clusterDir: string,
  settings: Settings,
  whenOwned: 'join' | 'refuse',
  logger: Logger,
): Promise<Claim> {
  const file = join(dir, 'owner.json');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const owner = readOwner(file);
    if (owner && ownerAlive(owner)) {
      const answering = await servesCluster(owner.port, settings.password, clusterDir);
      if (answering && whenOwned === 'join') return { owner };
      if (answering || whenOwned === 'refuse' || Date.now() > deadline) {
        throw new EmbeddedPostgresInUse(dir, owner, answering);
      }
      await new Promise((done) => setTimeout(done, 200));
      continue;
    }
    if (owner) {
      // Re-read before removing: another process may have recovered it meanwhile.
      if (JSON.stringify(readOwner(file)) !== JSON.stringify(owner)) continue;
      logger.info({ pid: owner.pid }, 'the previous owner of the embedded PostgreSQL is gone; taking over');
      rmSync(file, { force: true });
    }
    const mine: OwnerRecord = {
      pid: process.pid,
      port: settings.port,
      startedAt: new Date().toISOString(),
      command: process.argv.slice(1).join(' ') || process.argv0,
      processStart: processStart(process.pid),
    };
    const draft = `${file}.${process.pid}`;
    writeFileSync(draft, `${JSON.stringify(mine, null, 2)}\n`, { mode: 0o600 });
    try {
      linkSync(draft, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw error;
    } finally {
      rmSync(draft, { force: true });
    }
    const ours = () => readOwner(file)?.pid === process.pid;
    return {
      record(port) {
        if (ours()) writeFileSync(file, `${JSON.stringify({ ...mine, port }, null, 2)}\n`, { mode: 0o600 });
      },
      release() {
        if (ours()) rmSync(file, { force: true });
      },
    };
  }
}

function readOwner(file: string): OwnerRecord | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as OwnerRecord;
  } catch {
    return undefined; // missing, or half-written by a crash: nobody owns it
  }
}

function ownerAlive(owner: OwnerRecord): boolean {
  if (owner.pid === process.pid) return false; // our own record from an earlier run in this process
  if (!isAlive(owner.pid)) return false;
  const start = processStart(owner.pid);
  return owner.processStart === undefined || start === undefined || start === owner.processStart;
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

async function servesCluster(port: number, password: string, clusterDir: string): Promise<boolean> {
  const served = await answeringDataDirectory(port, password);
  if (!served) return false;
  try {
    return realpathSync(served) === realpathSync(clusterDir);
  } catch {
    return false;
  }
}

/**
 * The cluster lives in `<dir>/pg`, unless we are root and the `postgres` user cannot reach that
 * (the data dir is under a directory only root may enter): then in a directory of its own under
 * /var/lib/onramp, named after the data dir and recorded in its embedded.json, so that the data
 * dir still leads to its cluster.
 */
function clusterLocation(dir: string, settings: Settings, runAs: ReturnType<typeof postgresUser>): string {
  if (settings.clusterDir) return settings.clusterDir;
  const local = join(dir, 'pg');
  if (!runAs || reachableBy(runAs, dir)) return local;
  if (existsSync(join(local, 'PG_VERSION'))) {
    // A cluster made here before: moving medical data on our own is not ours to decide.
    const blocking = blockingDirectory(runAs, dir);
    throw new Error(
      `the embedded PostgreSQL cluster ${local} cannot start: the postgres user may not enter ${blocking}. ` +
        `Fix: chmod o+x ${blocking} (search only, not read), or move the data dir elsewhere and set ONRAMP_DATA_DIR`,
    );
  }
  const name = createHash('sha256').update(realpathSync(dir)).digest('hex').slice(0, 16);
  const external = join(SYSTEM_DIR, 'clusters', name);
  mkdirSync(dirname(external), { recursive: true, mode: 0o755 });
  return external;
}

/** Port and superuser password are chosen once and kept, so external tools can reconnect. */
function loadSettings(dir: string): Settings {
  const file = join(dir, 'embedded.json');
  const saved: Partial<Settings> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  if (saved.port && saved.password) return saved as Settings;
  const settings = {
    ...saved,
    port: saved.port ?? 0,
    password: saved.password ?? randomBytes(24).toString('base64url'),
  };
  saveSettings(dir, settings);
  return settings;
}

function saveSettings(dir: string, settings: Settings): void {
  writeFileSync(join(dir, 'embedded.json'), `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
}

async function choosePort(saved: number, dir: string, logger: Logger): Promise<number> {
  if (saved && (await isPortFree(saved))) return saved;
  const port = await freePort();
  if (saved) {
    logger.warn(
      { savedPort: saved, port },
      `port ${saved} of the embedded PostgreSQL (saved in ${join(dir, 'embedded.json')}) is taken by ` +
        `another program; starting on port ${port} instead and saving it. To keep ${saved}, stop ` +
        `whatever listens there (e.g. \`ss -ltnp 'sport = :${saved}'\`) and restart; tools connecting ` +
        `to the old port need the new one`,
    );
  }
  return port;
}

function isPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
      .once('error', () => resolve(false))
      .once('listening', () => server.close(() => resolve(true)))
      .listen(port, '127.0.0.1');
  });
}
