/**
 * What the tests of a swapped clinic server share (decisions 086, 090): another cluster at a
 * recorded server's address, and what Onramp could have left on a cluster.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { withClient } from '../src/db/sql.js';
import { overTcp, startTestApp, type TestApp, tempDir, testLogger } from './harness.js';

/**
 * The recorded server a swap test replaces: a throw-away cluster of the describe's in `dir`,
 * reached over TCP at `url`, and a test app whose only clinic server it is (no warm pool, no
 * sweep). Call it in a describe's body; the cluster stops after it.
 */
export async function recordedServerApp(prefix: string) {
  const logger = testLogger({ env: 'test', logLevel: 'warn' });
  const dir = tempDir(prefix);
  const recorded = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterAll(() => recorded.stop());
  const url = overTcp(recorded.url);
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    CLINIC_DATABASE_SERVERS: url,
  });
  return { logger, dir, recorded, url, t };
}

/**
 * A fresh data directory given the embedded server's saved settings at `recordedDir` (its port and
 * password): a cluster started there answers at the recorded one's URL, as another server.
 */
export function impostorDir(recordedDir: string, prefix = 'onramp-impostor-'): string {
  const dir = tempDir(prefix);
  copyFileSync(join(recordedDir, 'embedded.json'), join(dir, 'embedded.json'));
  return dir;
}

/** Everything a cluster holds that Onramp could have made: databases and roles. */
export function inventory(url: string) {
  return withClient(url, async (admin) => ({
    databases: (await admin.query<{ name: string }>('SELECT datname AS name FROM pg_database ORDER BY 1'))
      .rows,
    roles: (await admin.query<{ name: string }>('SELECT rolname AS name FROM pg_roles ORDER BY 1')).rows,
  }));
}

/** The id of the clinic database server a clinic's row names. */
export async function serverOf(t: TestApp, clinicId: string): Promise<string> {
  const clinic = await t.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
  return clinic.databaseServerId;
}
