/**
 * A clinic server that did not answer at boot, attached later by the health sweep: its warm pool
 * is filled then, not at the first registration placed there (which would clone: the pool is
 * empty at its claim).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, tempDir, testLogger } from '../../../test/harness.js';
import { startEmbeddedPostgres } from '../../db/embedded.js';
import { withClient } from '../../db/sql.js';

const logger = testLogger({ env: 'test', logLevel: 'error' });

describe('a clinic server down at boot, back later', async () => {
  const dir = tempDir('onramp-pool-back-');
  let server = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterAll(() => server.stop());
  const { url } = server;
  await server.stop();
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '2',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    CLINIC_DATABASE_SERVERS: url,
  });
  const { provisioning, db } = t.app.deps;

  it('has its spares made by the sweep that attaches it, before any claim', async () => {
    expect(db.servers.byId.size).toBe(0);
    server = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    expect(server.url).toBe(url);
    await provisioning.health.shallowSweep();
    expect(db.servers.byId.size).toBe(1);
    await provisioning.pool.idle();
    const spares = await withClient(
      url,
      async (admin) =>
        (
          await admin.query<{ name: string }>(
            `SELECT datname AS name FROM pg_database
            WHERE datname LIKE 'onramp\\_spare\\_%' AND shobj_description(oid, 'pg_database') = 'onramp:spare:verified'`,
          )
        ).rows,
    );
    expect(spares).toHaveLength(2);
  }, 120_000);
});
