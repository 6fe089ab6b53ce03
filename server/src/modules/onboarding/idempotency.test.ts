import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, testConfig, testLogger } from '../../../test/harness.js';
import { openDatabases } from '../../db/database.js';
import { IdempotencyStore } from './idempotency.js';

const config = testConfig({ DATABASE_URL: await createTestDatabase('idempotency') });
const db = await openDatabases(config, testLogger(config));
afterAll(() => db.close());

describe('stored Idempotency-Key answers are forgotten in the reconcile pass only', () => {
  const store = new IdempotencyStore(db.prisma);
  const row = (key: string, expiresInHours: number) => db.prisma.$executeRaw`
    INSERT INTO idempotency_keys (owner, key, fingerprint, status, expires_at)
    VALUES ('test.prune', ${key}, 'print', 'done', now() + make_interval(hours => ${expiresInHours}))`;
  const keys = async () =>
    (
      await db.prisma.$queryRaw<{ key: string }[]>`
        SELECT key FROM idempotency_keys WHERE owner = 'test.prune' ORDER BY key`
    ).map((found) => found.key);

  it('a request never deletes another key (it pays for its own statements only); prune takes the expired ones', async () => {
    await row('expired', -1);
    await row('live', 1);
    // 300 answers stored: with a 1 % prune on the request path, the expired key went in 95 % of runs.
    for (let i = 0; i < 300; i++) {
      expect(await store.begin('test.requests', `k${i}`, 'print')).toEqual({ kind: 'proceed' });
      await store.finish('test.requests', `k${i}`, 201, { ok: true });
    }
    expect(await keys()).toEqual(['expired', 'live']);
    expect(await store.prune()).toBeGreaterThanOrEqual(1);
    expect(await keys()).toEqual(['live']);
  });
});
