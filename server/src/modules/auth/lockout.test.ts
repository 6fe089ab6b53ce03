import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, startRedis, startTestApp, testConfig } from '../../../test/harness.js';
import { openDatabases } from '../../db/database.js';
import { createLogger } from '../../logger.js';
import { type LimitStore, Lockout, postgresLimitStore, redisLimitStore } from './lockout.js';

const redis = await startRedis();

async function stores(): Promise<[string, LimitStore][]> {
  const config = testConfig({ DATABASE_URL: await createTestDatabase('limits') });
  const db = await openDatabases(config, createLogger(config));
  const client = new Redis(redis.url);
  afterAll(async () => {
    client.disconnect();
    await db.close();
  });
  return [
    ['PostgreSQL', postgresLimitStore(db.prisma)],
    ['Redis', redisLimitStore(client)],
  ];
}

describe.each(await stores())('lockouts on %s', (_name, store) => {
  it('blocks after the threshold, doubles the next block, and clears on success', async () => {
    const lockout = new Lockout(store, `test.${Math.random()}`, { threshold: 3, baseSeconds: 60 });
    await lockout.fail('k');
    await lockout.fail('k');
    expect(await lockout.retryAfter('k')).toBe(0);
    await lockout.fail('k');
    expect(await lockout.retryAfter('k')).toBeGreaterThanOrEqual(59);
    expect(await lockout.retryAfter('k')).toBeLessThanOrEqual(60);
    for (let i = 0; i < 3; i++) await lockout.fail('k');
    expect(await lockout.retryAfter('k')).toBeGreaterThanOrEqual(119);
    await lockout.succeed('k');
    expect(await lockout.retryAfter('k')).toBe(0);
    expect(await lockout.retryAfter('other')).toBe(0);
  });

  it('counts concurrent failures exactly', async () => {
    const lockout = new Lockout(store, `test.${Math.random()}`, { threshold: 5, baseSeconds: 60 });
    await Promise.all(Array.from({ length: 10 }, () => lockout.fail('k')));
    // 10 failures: two lockouts, the second twice as long.
    expect(await lockout.retryAfter('k')).toBeGreaterThanOrEqual(119);
  });
});

describe('sign-in lockout with REDIS_URL', async () => {
  const t = await startTestApp({
    REDIS_URL: redis.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });

  it('counts in Redis', async () => {
    const query =
      'mutation { signInWithPassword(email: "redis-lock@example.com", password: "wrong password 1") { __typename } }';
    for (let i = 0; i < 5; i++) await t.gql(query);
    const locked = await t.gql(query);
    expect(locked.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    const client = new Redis(redis.url);
    try {
      expect(await client.exists('onramp:limits:sign_in.account:account:redis-lock@example.com')).toBe(1);
    } finally {
      client.disconnect();
    }
    expect(
      await t.app.deps.db.prisma.rateLimit.count({ where: { key: 'account:redis-lock@example.com' } }),
    ).toBe(0);
  });
});
