/**
 * Network namespaces for tests of a host that vanishes without closing its connections (no FIN,
 * no RST): power loss, a partition (docs/decisions/092, 095). Needs root and `ip netns`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { onTestFinished } from 'vitest';
import { startExtraPostgres } from './harness.js';

/** Why a namespace cannot be made here, or null when it can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root: a network namespace needs CAP_NET_ADMIN';
  const probe = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0)
    return `\`ip netns\` is unavailable: ${probe.error ?? probe.stderr.trim()}`;
  return null;
}

function ip(...args: string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${result.stderr.trim()}`);
}

export interface Namespace {
  name: string;
  /** The pair's /30: both ends connect from it (the host's end is local here). */
  network: string;
  hostAddress: string;
  nsAddress: string;
  /**
   * The namespace's end goes down: nothing leaves it (its routes are gone) and nothing reaches
   * it (the veth drops what is sent to a peer that is down); the host's address stays.
   */
  vanish(): void;
  /** The namespace's end up again: the host is back, and what it had open learns it is alone. */
  revive(): void;
}

/**
 * A network namespace joined to this one by a veth pair on a /30 of 10.213.0.0/16 that no
 * interface here uses yet; removed when the test ends, whatever happened.
 */
export function makeNamespace(): Namespace {
  const id = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`.slice(-8);
  const name = `onrv${id}`;
  const hostEnd = `onrv${id}h`;
  const nsEnd = `onrv${id}n`;
  const used = spawnSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }).stdout;
  let base: string;
  do base = `10.213.${randomInt(256)}.${randomInt(64) * 4}`;
  while (used.includes(`10.213.${base.split('.')[2]}.`));
  const [a, b, c, d] = base.split('.');
  const hostAddress = `${a}.${b}.${c}.${Number(d) + 1}`;
  const nsAddress = `${a}.${b}.${c}.${Number(d) + 2}`;
  onTestFinished(() => {
    // Deleting the namespace destroys its end of the pair, and with it the pair.
    spawnSync('ip', ['netns', 'del', name]);
    spawnSync('ip', ['link', 'del', hostEnd]);
  });
  ip('netns', 'add', name);
  ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
  ip('link', 'set', nsEnd, 'netns', name);
  ip('addr', 'add', `${hostAddress}/30`, 'dev', hostEnd);
  ip('link', 'set', hostEnd, 'up');
  ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsAddress}/30`, 'dev', nsEnd);
  ip('netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'up');
  // The server's built-in DNS listens on 127.0.0.1 inside the namespace.
  ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  return {
    name,
    network: `${base}/30`,
    hostAddress,
    nsAddress,
    vanish: () => ip('netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'down'),
    revive: () => ip('netns', 'exec', name, 'ip', 'link', 'set', nsEnd, 'up'),
  };
}

/** `url` (the embedded server's, over its socket) over TCP at `address`, database `database`. */
export function overTcpAt(url: string, address: string, database: string, port?: number): string {
  const tcp = new URL(url);
  tcp.hostname = address;
  if (port !== undefined) tcp.port = String(port);
  tcp.searchParams.delete('host');
  tcp.pathname = `/${database}`;
  return tcp.toString();
}

/**
 * A TCP forwarder inside `netns`, at its address and `port`, to `target` (host:port) on this
 * side: a client here that connects to it crosses the veth twice (to the namespace and back), so
 * the namespace's vanish cuts both legs, as a server host losing its link would. A process in
 * this namespace cannot be made to reach a local address over the veth otherwise (local traffic
 * takes the loopback). Resolves once it listens; killed when the test ends.
 */
export async function forwarderIn(
  netns: Namespace,
  port: number,
  target: { host: string; port: number },
): Promise<ChildProcess> {
  const script = `
    const net = require('node:net');
    const [address, port, host, to] = process.argv.slice(1);
    net.createServer((client) => {
      const upstream = net.connect(Number(to), host);
      const close = () => { client.destroy(); upstream.destroy(); };
      client.pipe(upstream); upstream.pipe(client);
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    }).listen(Number(port), address, () => console.log('listening'));`;
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns.name,
      process.execPath,
      '-e',
      script,
      netns.nsAddress,
      String(port),
      target.host,
      String(target.port),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  await new Promise<void>((ready, failed) => {
    const timer = setTimeout(() => failed(new Error('the forwarder did not listen within 10 s')), 10_000);
    child.stdout?.once('data', () => {
      clearTimeout(timer);
      ready();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      failed(new Error(`the forwarder exited (${code}) before it listened`));
    });
  });
  return child;
}

/**
 * A throw-away PostgreSQL reached at a forwarder in a namespace of its own (`url`, over TCP, its
 * `postgres` database): the namespace's vanish cuts every connection made through `url`, as the
 * loss of a clinic server's host would, while `server.url` (its socket) still reaches it. The
 * server is stopped when the test ends, the link revived first.
 */
export async function serverBehindNamespace() {
  const netns = makeNamespace();
  const server = await startExtraPostgres({
    listenOn: [{ address: netns.hostAddress, clients: netns.network }],
  });
  onTestFinished(() => server.stop());
  const port = 20_000 + randomInt(20_000);
  await forwarderIn(netns, port, { host: netns.hostAddress, port: Number(new URL(server.url).port) });
  onTestFinished(() => netns.revive());
  return { netns, server, url: overTcpAt(server.url, netns.nsAddress, 'postgres', port) };
}

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Polls `probe` every 100 ms until `ok`; throws, with the last value, after `budgetMs`. */
export async function until<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  budgetMs: number,
): Promise<T> {
  const end = Date.now() + budgetMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > end) throw new Error(`${what}: still ${JSON.stringify(value)} after ${budgetMs} ms`);
    await sleep(100);
  }
}
