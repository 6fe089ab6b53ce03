/**
 * A port chosen free can be taken before its listener binds it. What starts on such a port starts
 * again on another: Node's own listeners, redis-server, and the embedded PostgreSQL, whose error
 * is only its log's last lines.
 */
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { startRedis, startTestAppAtPublicUrl } from '../test/harness.js';
import { initdb, postgresBinaries, postgresUser, startPostmaster } from './db/postgres-process.js';
import { addressInUse, holdPort, onFreePort } from './ports.js';

const listen = (port: number) =>
  new Promise<Server>((done, fail) => {
    const server = createServer().once('error', fail);
    server.listen(port, '127.0.0.1', () => done(server));
  });

describe('a port taken between its choice and the listen', () => {
  it('a start on a taken port is tried again on another one', async () => {
    const held = await holdPort();
    const tried: number[] = [];
    const server = await onFreePort(async (port) => {
      tried.push(port);
      return listen(port);
    }, held.port);
    expect(tried[0]).toBe(held.port);
    expect(tried).toHaveLength(2);
    server.close();
    await held.release();
  });

  it('an error that is not a taken port is thrown at once', async () => {
    let calls = 0;
    await expect(
      onFreePort(async () => {
        calls += 1;
        throw new Error('no such file');
      }),
    ).rejects.toThrow('no such file');
    expect(calls).toBe(1);
  });

  it('an app whose PUBLIC_URL names its port, started on a taken one, answers on another it names', async () => {
    const held = await holdPort();
    const t = await startTestAppAtPublicUrl({ CLINIC_POOL_SIZE: '0' }, {}, held.port);
    const { port } = new URL(t.url);
    expect(port).not.toBe(String(held.port));
    expect(t.config.publicUrl).toBe(`http://127.0.0.1:${port}`);
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    await held.release();
  });

  it('redis-server started on a taken port answers on another', async () => {
    const held = await holdPort();
    const { url } = await startRedis(held.port);
    expect(new URL(url).port).not.toBe(String(held.port));
    const client = new Redis(url);
    expect(await client.ping()).toBe('PONG');
    await client.quit();
    await held.release();
  });

  it('a PostgreSQL refused its port fails with an error read as a taken port', async () => {
    const runAs = postgresUser();
    const dir = mkdtempSync(join(tmpdir(), 'onramp-ports-'));
    const clusterDir = join(dir, 'pg');
    if (runAs) chownSync(dir, runAs.uid, runAs.gid);
    const binDir = join(postgresBinaries(runAs), 'bin');
    initdb({ binDir, clusterDir, password: 'secret', runAs });
    const held = await holdPort();
    const start = startPostmaster({
      binDir,
      clusterDir,
      port: held.port,
      password: 'secret',
      settings: { listen_addresses: '127.0.0.1', unix_socket_directories: '' },
      logFile: join(dir, 'postgres.log'),
      runAs,
    });
    const error = await start.then(
      () => undefined,
      (failure: Error) => failure,
    );
    await held.release();
    rmSync(dir, { recursive: true, force: true });
    expect(error).toBeInstanceOf(Error);
    expect(addressInUse(error)).toBe(true);
  });
});
