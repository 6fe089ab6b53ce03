/**
 * The server child of the tests picks its own port: a port chosen here and handed over could be
 * taken by another process of the parallel suite in the seconds (up to ~50 s under load) the child
 * needs to start. Shown by construction: whatever port the child is told, a neighbour takes it
 * before the child binds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { afterFile, createTestDatabase, TEST_SECRETS } from './harness.js';
import { startServerProcess } from './server-process.js';

/** The server child of this process once it has exec'd (before that, /proc shows our own command line). */
function serverChild(): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of stat is the parent's pid; the command (field 2) may hold spaces, hence after ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('src/main.ts')) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

const portOf = (pid: number) =>
  readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .find((variable) => variable.startsWith('PORT='))
    ?.slice('PORT='.length);

describe.runIf(process.platform === 'linux')('the server child of the tests', () => {
  it('listens, and is reached, even when the port it was told is taken before it binds', async () => {
    const squatter = createServer((socket) => socket.destroy());
    afterFile(() => new Promise((done) => squatter.close(done)));
    const starting = startServerProcess({
      ...TEST_SECRETS,
      ONRAMP_ENV: 'test',
      DATABASE_URL: await createTestDatabase('server_process'),
      LOG_LEVEL: 'error', // no log line to read the port from
    });
    let told: string | undefined;
    for (let pid = serverChild(); told === undefined; pid = serverChild()) {
      if (pid !== undefined) told = portOf(pid);
      else await new Promise((done) => setTimeout(done, 5));
    }
    // A neighbour of the parallel suite takes it first (port 0 cannot be taken: it means "any").
    if (told !== '0') await new Promise<void>((done) => squatter.listen(Number(told), '127.0.0.1', done));

    const server = await starting;
    expect(new URL(server.url).port).not.toBe(told);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  }, 120_000);
});
