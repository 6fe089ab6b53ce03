/** A child started with spawnOwned ends when the process that started it is killed. */
import { spawn, spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { REPO_ROOT } from '../src/db/paths.js';
import { tempDir } from './harness.js';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Every pid this file saw, killed at the end whatever the outcome. */
const started: number[] = [];
afterAll(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

it('a redis-server started through spawnOwned ends when its parent is SIGKILLed', async () => {
  // The parent: a Node process that starts the daemon (on a Unix socket: no port to pick), says
  // its pid, and waits.
  const socket = join(tempDir('onramp-owned-'), 'redis.sock');
  const parent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      `const { spawnOwned } = await import(${JSON.stringify(resolve(REPO_ROOT, 'server/test/owned-process.ts'))});
       const child = spawnOwned('redis-server', ['--port', '0', '--unixsocket', ${JSON.stringify(socket)}, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
       child.once('spawn', () => console.log(child.pid));
       setInterval(() => {}, 1000);`,
    ],
    { cwd: resolve(REPO_ROOT, 'server'), stdio: ['ignore', 'pipe', 'inherit'] },
  );
  started.push(parent.pid as number);
  const pid = await new Promise<number>((done, fail) => {
    parent.stdout?.once('data', (chunk: Buffer) => done(Number(chunk.toString().trim())));
    parent.once('exit', (code) => fail(new Error(`the parent exited with ${code} first`)));
  });
  started.push(pid);
  // It is the daemon itself, not a wrapper around it: setpriv executed it in its own place.
  for (let i = 0; !/redis-server/.test(comm(pid)); i++) {
    if (i > 100) throw new Error(`pid ${pid} runs ${comm(pid)}, not redis-server`);
    await new Promise((done) => setTimeout(done, 50));
  }
  expect(alive(pid)).toBe(true);

  parent.kill('SIGKILL');
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    await new Promise((done) => setTimeout(done, 50));
    gone = !alive(pid) || comm(pid) === '';
  }
  expect(gone, `redis-server ${pid} outlived its parent`).toBe(true);
});

/** The command name of `pid`, or '' when there is none (gone, or a zombie not reaped yet). */
function comm(pid: number): string {
  const ps = spawnSync('ps', ['-o', 'comm=,stat=', '-p', String(pid)], { encoding: 'utf8' });
  const [name = '', stat = ''] = ps.stdout.trim().split(/\s+/);
  return stat.startsWith('Z') ? '' : name;
}
