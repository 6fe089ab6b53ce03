/** Helpers for test files: a fresh database per file, a running app, GraphQL over HTTP and WS. */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import {
  type AddressInfo,
  connect,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { afterAll, inject } from 'vitest';
import WebSocket from 'ws';
import { type App, type BuildAppOptions, buildApp } from '../src/app.js';
import { type CentralPrisma, openDatabases } from '../src/db/database.js';
import {
  type EmbeddedPostgresOptions,
  type RunningPostgres,
  startEmbeddedPostgres,
} from '../src/db/embedded.js';
import { REPO_ROOT } from '../src/db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../src/db/sql.js';
import { type Config, loadConfig } from '../src/env.js';
import { createLogger, type Logger } from '../src/logger.js';
import { onFreePort } from '../src/ports.js';
import { spawnOwned } from './owned-process.js';

export const TEST_SECRETS = {
  JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789',
  ENCRYPTION_KEY: '00'.repeat(32),
};

/**
 * A logger for tests. Its lines go through `console`, which vitest keeps with the test that wrote
 * them and prints only when that test fails (`silent: 'passed-only'` in vitest.config.ts): tests
 * that break things on purpose stay quiet, a failing one shows what the server said. `lines`, when
 * given, receives every line as well.
 */
export function testLogger(config: Pick<Config, 'env' | 'logLevel'>, lines?: string[]): Logger {
  return createLogger(config, {
    write(line: string) {
      lines?.push(line);
      console.log(line.trimEnd());
    },
  });
}

/** What `afterFile` keeps for the file's end, for calls Vitest's `afterAll` would ignore. */
const atFileEnd = new Set<() => Promise<unknown>>();
// Registered as the file imports this module: the file's own last hook (hooks run as a stack).
afterAll(async () => {
  for (const cleanup of [...atFileEnd].reverse()) await cleanup();
});

/**
 * Runs `cleanup` once after the file, or after the describe block that called it. Vitest ignores
 * an `afterAll` registered once its suite is collected — inside a test or a hook — so a helper a
 * test body calls (a server, a folder) would otherwise never be cleaned up: such a call is run at
 * the file's end, in reverse order.
 */
export function afterFile(cleanup: () => unknown): void {
  let ran: Promise<unknown> | undefined;
  const once = () => {
    ran ??= Promise.resolve().then(cleanup);
    return ran;
  };
  afterAll(once);
  atFileEnd.add(once);
}

/**
 * `url` over TCP at 127.0.0.1, without the embedded server's Unix socket (its `host`): only a port
 * can be taken over by another cluster, and PostgreSQL applies its TCP settings only there.
 */
export function overTcp(url: string): string {
  const parsed = new URL(url);
  parsed.hostname = '127.0.0.1';
  parsed.searchParams.delete('host');
  return parsed.toString();
}

/** `pnpm <args>` from the repository root, as an operator runs it, with only `env` (and PATH). */
export async function runPnpm(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn('pnpm', args, {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  return { code, stdout, stderr };
}

/** A temporary folder removed after the file; traversable by the `postgres` user when root. */
export function tempDir(prefix = 'onramp-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (process.getuid?.() === 0) chmodSync(dir, 0o711);
  afterFile(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Another throw-away PostgreSQL server for this file (placement, faults, DATABASE_URL). */
export async function startExtraPostgres(
  options: Pick<EmbeddedPostgresOptions, 'maxConnections' | 'listenOn'> = {},
): Promise<RunningPostgres> {
  const server = await startEmbeddedPostgres({
    dir: tempDir('onramp-extra-pg-'),
    logger: testLogger({ env: 'test', logLevel: 'warn' }),
    ephemeral: true,
    ...options,
  });
  afterFile(() => server.stop());
  return server;
}

/**
 * A real redis-server (Debian's package) on a free loopback port (`first` if it is still free),
 * stopped after the file.
 */
export async function startRedis(first?: number): Promise<{ url: string }> {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    throw new Error(
      `redis-server is required (Debian: apt-get install -y redis-server): ${probe.error.message}`,
    );
  }
  const start = async (port: number) => {
    const child = spawnOwned(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    await new Promise<void>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => {
        child.kill('SIGTERM');
        reject(new Error(`redis-server did not start:\n${output}`));
      }, 10_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
    afterFile(async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    });
    return { url: `redis://127.0.0.1:${port}` };
  };
  return onFreePort(start, first);
}

/**
 * A connection to the server of `target`. An embedded server's URL names its Unix socket
 * directory (`host`): a proxy dials that.
 */
function dial(target: string): Socket {
  const to = new URL(target);
  const socketDir = to.searchParams.get('host');
  return socketDir ? connect(join(socketDir, `.s.PGSQL.${to.port}`)) : connect(Number(to.port), to.hostname);
}

/**
 * Listens on a free loopback port, closed (with every socket in `sockets`) after the file.
 * @returns `target`'s URL with the proxy's host and port.
 */
async function listenAsProxy(server: NetServer, sockets: Set<Socket>, target: string): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterFile(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as AddressInfo).port);
  url.searchParams.delete('host');
  return url.toString();
}

/**
 * A TCP proxy to `target` (a PostgreSQL or Redis URL) whose replies can be held back: what the
 * server sends reaches the client `delayMs` later, in order, as over a slow link. Returns the
 * target's URL with the proxy's host and port. Closed after the file.
 */
export async function slowLink(target: string): Promise<{ url: string; delayMs: number }> {
  const link = { url: '', delayMs: 0 };
  const sockets = new Set<Socket>();
  const server = createNetServer((client) => {
    const upstream = dial(target);
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => upstream.write(chunk));
    // Timers of one duration fire in the order they were set: the replies keep their order.
    upstream.on('data', (chunk) => {
      if (link.delayMs === 0) client.write(chunk);
      else setTimeout(() => client.write(chunk), link.delayMs);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    upstream.on('close', () => setTimeout(close, link.delayMs)).on('error', close);
  });
  link.url = await listenAsProxy(server, sockets, target);
  return link;
}

/**
 * A TCP proxy to the PostgreSQL server of `target` that can leave connections unanswered, as a
 * server too loaded to answer within a client's connect timeout does: `stall(user, times)` holds
 * the next `times` connections whose startup message names a user matching `user` (nothing is
 * forwarded, either way, until the client gives up). Every other connection is passed through.
 * Returns the target's URL with the proxy's host and port. Closed after the file.
 */
export async function stallingLink(
  target: string,
): Promise<{ url: string; stall(user: RegExp, times: number): void; readonly stalled: number }> {
  const pending: { user: RegExp; times: number }[] = [];
  let stalled = 0;
  const sockets = new Set<Socket>();
  /** The user of a startup message (length, protocol 3.0, then name/value pairs), if complete. */
  const startupUser = (packet: Buffer): string | null | undefined => {
    if (packet.length < 8 || packet.length < packet.readInt32BE(0)) return undefined;
    const pairs = packet.subarray(8, packet.readInt32BE(0)).toString('utf8').split('\0');
    for (let i = 0; i + 1 < pairs.length; i += 2) if (pairs[i] === 'user') return pairs[i + 1] ?? null;
    return null;
  };
  const server = createNetServer((client) => {
    sockets.add(client);
    let head = Buffer.alloc(0);
    let upstream: Socket | undefined;
    const close = () => {
      client.destroy();
      upstream?.destroy();
      sockets.delete(client);
      if (upstream) sockets.delete(upstream);
    };
    client.on('close', close).on('error', close);
    const onHead = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const user = startupUser(head);
      if (user === undefined) return;
      client.off('data', onHead);
      const rule = user === null ? undefined : pending.find((entry) => entry.user.test(user));
      if (rule) {
        // Held: the client's own connect timeout ends it.
        rule.times -= 1;
        if (rule.times === 0) pending.splice(pending.indexOf(rule), 1);
        stalled += 1;
        return;
      }
      const link = dial(target);
      upstream = link;
      sockets.add(link);
      link.write(head);
      client.on('data', (data) => link.write(data));
      link.on('data', (data) => client.write(data));
      link.on('close', close).on('error', close);
    };
    client.on('data', onHead);
  });
  const url = await listenAsProxy(server, sockets, target);
  return {
    url,
    stall(user, times) {
      pending.push({ user, times });
    },
    get stalled() {
      return stalled;
    },
  };
}

/**
 * Both backends a shared store can live on (lockouts, rate-limit counters): a fresh central
 * database and a client of a real redis-server, closed after the file.
 */
export async function storeBackends(
  prefix: string,
): Promise<{ prisma: CentralPrisma; redis: Redis; redisUrl: string }> {
  const { url } = await startRedis();
  const config = testConfig({ DATABASE_URL: await createTestDatabase(prefix) });
  const db = await openDatabases(config, testLogger(config));
  const redis = new Redis(url);
  afterFile(async () => {
    redis.disconnect();
    await db.close();
  });
  return { prisma: db.prisma, redis, redisUrl: url };
}

/**
 * Backends of `url`'s database waiting on a lock, whose statement matches `pattern` (ILIKE). Each
 * call reads from a session of its own: a transaction keeps its first view of pg_stat_activity,
 * so a poll inside the transaction that holds the lock can see 0 for good.
 */
export function lockWaiters(url: string, pattern = '%'): Promise<number> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1`,
      [pattern],
    );
    return rows[0]?.n ?? 0;
  });
}

/** graphile-worker's row of job `id` on `url`'s database, as a crash test watches it; gone once done. */
export function jobRow(
  url: string,
  id: string | undefined,
): Promise<{ locked_by: string | null; attempts: number; last_error: string | null } | undefined> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{
      locked_by: string | null;
      attempts: number;
      last_error: string | null;
    }>('SELECT locked_by, attempts, last_error FROM graphile_worker.jobs WHERE id = $1', [id]);
    return rows[0];
  });
}

/** Creates a database cloned from the migrated central template; dropped after the file. */
export async function createTestDatabase(prefix = 'test'): Promise<string> {
  const admin = inject('pgAdminUrl');
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  await withClient(admin, (client) =>
    client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(inject('centralTemplate'))}`),
  );
  afterFile(() => dropDatabase(name));
  return databaseUrl(admin, name);
}

export async function dropDatabase(name: string): Promise<void> {
  await withClient(inject('pgAdminUrl'), (client) =>
    client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`),
  );
}

/** A test Config; the data dir is a fresh temporary folder removed after the file. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  const dataDir = mkdtempSync(join(tmpdir(), 'onramp-test-data-'));
  afterFile(() => rmSync(dataDir, { recursive: true, force: true }));
  return loadConfig({
    ONRAMP_ENV: 'test',
    PORT: '0',
    ONRAMP_DATA_DIR: dataDir,
    CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
    // Test files register many clinics and invite many members from 127.0.0.1; the tests of
    // these limits set their own.
    REGISTRATION_IP_LIMIT: '100000/1h',
    REGISTRATION_TOTAL_LIMIT: '100000/1h',
    INVITATION_CLINIC_LIMIT: '100000/24h',
    INVITATION_TOTAL_LIMIT: '100000/24h',
    ...TEST_SECRETS,
    ...env,
  });
}

export interface TestApp {
  app: App;
  url: string;
  config: Config;
  /** Port of the app's built-in DNS server (UDP and TCP on 127.0.0.1). */
  dnsPort: number;
  /** POSTs a GraphQL operation as a browser or API client would. */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: { data?: T; errors?: GraphQLErrorBody[] }; headers: Headers }>;
  /** `Authorization` headers of the bootstrapped platform super-admin. */
  superAdmin(): Promise<{ authorization: string }>;
  /** Every log line the app wrote so far (JSON, at the config's LOG_LEVEL: `warn` by default). */
  logs(): string;
  /** A graphql-ws client on the app's /graphql, closed after the file. */
  ws(options?: { headers?: Record<string, string>; connectionParams?: Record<string, unknown> }): Client;
}

export interface GraphQLErrorBody {
  message: string;
  extensions?: Record<string, unknown>;
}

/**
 * startTestApp on a port its PUBLIC_URL names, so that the links it e-mails are this server's,
 * verbatim. The port is chosen before the app listens: taken meanwhile, the app starts again on
 * another (server/src/ports.ts). `first` is the port tried first.
 */
export function startTestAppAtPublicUrl(
  env: Record<string, string | undefined> = {},
  options: BuildAppOptions = {},
  first?: number,
): Promise<TestApp> {
  return onFreePort(
    (port) => startTestApp({ ...env, PORT: String(port), PUBLIC_URL: `http://127.0.0.1:${port}` }, options),
    first,
  );
}

/** Starts an app on its own fresh central database (unless DATABASE_URL is given). */
export async function startTestApp(
  env: Record<string, string | undefined> = {},
  options: BuildAppOptions = {},
): Promise<TestApp> {
  const config = testConfig({ DATABASE_URL: env.DATABASE_URL ?? (await createTestDatabase()), ...env });
  const lines: string[] = [];
  const logger = testLogger(config, lines);
  const db = await openDatabases(config, logger);
  const app = await buildApp(
    { config, logger, db, startedAt: new Date() },
    // dnsPort 0: the built-in DNS server on a free port, so files running at once never collide.
    { drainTimeoutMs: 2_000, jobPollIntervalMs: 100, dnsPort: 0, ...options },
  );
  // A start that failed (its port taken: startTestAppAtPublicUrl tries another) leaves nothing open.
  const url = await app.start().catch(async (error: unknown) => {
    await app.stop();
    throw error;
  });
  const clients: Client[] = [];
  afterFile(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await app.stop();
  });
  return {
    app,
    url,
    config,
    logs: () => lines.join(''),
    get dnsPort() {
      if (app.dnsPort === undefined) throw new Error('the built-in DNS server is not running');
      return app.dnsPort;
    },
    async superAdmin() {
      const admin = await app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: config.adminEmail } });
      const session = await app.deps.auth.startSession(admin.id, { ip: '127.0.0.1' }, 'test');
      return { authorization: `Bearer ${session.accessToken}` };
    },
    async gql(query, variables, headers = {}) {
      const response = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: (await response.json()) as never, headers: response.headers };
    },
    ws(options = {}) {
      const client = createClient({
        url: `${url.replace(/^http/, 'ws')}/graphql`,
        webSocketImpl: class extends WebSocket {
          constructor(address: string, protocols?: string | string[]) {
            super(address, protocols, { headers: options.headers });
          }
        },
        retryAttempts: 0,
        lazy: true,
        connectionParams: options.connectionParams,
      });
      clients.push(client);
      return client;
    },
  };
}

/** Runs one operation over a graphql-ws client and resolves with its first result. */
export function wsQuery<T>(
  client: Client,
  query: string,
): Promise<{ data?: T; errors?: readonly GraphQLErrorBody[] }> {
  return new Promise((resolve, reject) => {
    let result: { data?: T; errors?: readonly GraphQLErrorBody[] } | undefined;
    client.subscribe<T>(
      { query },
      {
        next: (value) => {
          result = value as typeof result;
        },
        error: reject,
        complete: () => (result ? resolve(result) : reject(new Error('completed without a result'))),
      },
    );
  });
}

/**
 * What a subscription receives: `next <step:status, data or error code>` lines, then `complete`
 * (or `error …`); `done` once it has ended.
 */
export function recordSubscription(client: Client, query: string) {
  const events: string[] = [];
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const unsubscribe = client.subscribe<{ provisioningProgress?: { step: string; status: string } }>(
    { query },
    {
      next: ({ data, errors }) => {
        const event = data?.provisioningProgress;
        events.push(
          errors
            ? `next ${String(errors[0]?.extensions?.code)}`
            : `next ${event ? `${event.step}:${event.status}` : 'data'}`,
        );
      },
      error: (error) => {
        events.push(`error ${String(error)}`);
        resolveDone();
      },
      complete: () => {
        events.push('complete');
        resolveDone();
      },
    },
  );
  return { events, done, unsubscribe };
}
