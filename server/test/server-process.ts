/** The real server, `node src/main.ts`, in a child process: for what only a process shows (stdout). */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, inject } from 'vitest';
import { REPO_ROOT } from '../src/db/paths.js';
import { tempDir } from './harness.js';

export function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const server = createServer()
      .once('error', reject)
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => done(port));
      });
  });
}

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

/**
 * Starts the server with `env` on a free port (DNS off, no warm pool, no health sweep, logs at
 * info on stdout as in a terminal) and resolves once `/readyz` answers and, in development, the
 * start banner is out. Stopped after the file.
 */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(REPO_ROOT, 'server/src/main.ts')], {
    cwd: resolve(REPO_ROOT, 'server'),
    env: {
      PATH: process.env.PATH ?? '',
      PORT: String(port),
      DNS_PORT: '0',
      ONRAMP_DATA_DIR: tempDir('onramp-process-'),
      CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'info',
      NO_COLOR: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a command started from a shell: `interrupt` signals the group.
    detached: true,
  });
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
  afterAll(stop);
  const url = `http://127.0.0.1:${port}`;
  const development = (env.ONRAMP_ENV ?? 'development') === 'development';
  for (let i = 0; i < 900; i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}:\n${err}`);
    const ready = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready && (!development || out.includes('Sign in'))) {
      return { url, child, stdout: () => out, stderr: () => err, stop, interrupt };
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error(`server never became ready:\n${out}\n${err}`);
}
