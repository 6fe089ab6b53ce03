/** The real server, `node src/main.ts`, in a child process: for what only a process shows (stdout). */
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { inject } from 'vitest';
import { REPO_ROOT } from '../src/db/paths.js';
import { listeningUrl } from '../src/process-channel.js';
import { afterFile, tempDir } from './harness.js';
import { spawnOwned } from './owned-process.js';

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** Ctrl-C as a terminal sends it: SIGINT to the whole process group; resolves with the exit. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ServerProcessOptions {
  /** Milliseconds the child gets to listen and be ready (tsx compiles the server first). @default 90000 */
  budgetMs?: number;
  /**
   * Runs the child inside this network namespace (`ip netns exec`, which executes the server in
   * its own place: same pid, same IPC channel), listening on `address`, the namespace's own
   * address, where the returned `url` reaches it. Its env must then name databases it can reach
   * from there (CLINIC_DATABASE_SERVERS too).
   */
  netns?: { name: string; address: string };
  /** Called with the child as soon as it is spawned: for a test that kills it before it is ready. */
  onSpawn?: (child: ChildProcess) => void;
}

/**
 * Starts the server with `env` (DNS off, no warm pool, no health sweep, logs at info on stdout as
 * in a terminal) on a port of its own choosing, PORT=0, learnt from its `listening` message on the
 * IPC channel (server/src/process-channel.ts), at any log level: a port picked here and handed
 * over could be taken by another process of the parallel suite while the child starts. Resolves
 * once `/readyz` answers and, in development, the start banner is out. Stopped after the file.
 */
export async function startServerProcess(
  env: Record<string, string>,
  options: ServerProcessOptions = {},
): Promise<ServerProcess> {
  const budgetMs = options.budgetMs ?? 90_000;
  const end = Date.now() + budgetMs;
  const server = [process.execPath, '--import', 'tsx', resolve(REPO_ROOT, 'server/src/main.ts')];
  const [command, ...args] = options.netns ? ['ip', 'netns', 'exec', options.netns.name, ...server] : server;
  const child = spawnOwned(command as string, args, {
    cwd: resolve(REPO_ROOT, 'server'),
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      DNS_PORT: '0',
      ONRAMP_DATA_DIR: tempDir('onramp-process-'),
      CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'info',
      NO_COLOR: '1',
      ...(options.netns ? { HOST: options.netns.address } : {}),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    // Its own process group, as a command started from a shell: `interrupt` signals the group.
    detached: true,
  });
  options.onSpawn?.(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (running()) child.kill('SIGTERM');
    await exited;
  };
  const interrupt = async () => {
    if (running()) process.kill(-(child.pid as number), 'SIGINT');
    return exited;
  };
  afterFile(stop);
  const output = () => `stdout:\n${out}\nstderr:\n${err}`;
  const url = await listeningUrl(child, {
    budgetMs,
    name: 'the server child',
    output: () => `its ${output()}`,
  });
  const development = (env.ONRAMP_ENV ?? 'development') === 'development';
  for (;;) {
    if (!running())
      throw new Error(`the server child exited with ${child.exitCode ?? child.signalCode}; its ${output()}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready && (!development || out.includes('Sign in'))) {
      return { url, child, stdout: () => out, stderr: () => err, stop, interrupt };
    }
    if (Date.now() >= end) {
      const waited = ready ? 'the start banner' : '/readyz to answer 200';
      throw new Error(
        `the server child listens on ${url} but was not ready within ${budgetMs} ms (waited for ${waited}); its ${output()}`,
      );
    }
    await new Promise((done) => setTimeout(done, 100));
  }
}
