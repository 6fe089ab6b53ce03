import { describe, expect, it } from 'vitest';
import { startTestApp, storeBackends } from '../../../test/harness.js';
import { type LimitStore, Lockout, postgresLimitStore, redisLimitStore } from './lockout.js';

const backends = await storeBackends('limits');
const stores: [string, LimitStore][] = [
  ['PostgreSQL', postgresLimitStore(backends.prisma)],
  ['Redis', redisLimitStore(backends.redis)],
];

describe.each(stores)('lockouts on %s', (_name, store) => {
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
    REDIS_URL: backends.redisUrl,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });

  it('counts in Redis', async () => {
    const query =
      'mutation { signInWithPassword(email: "redis-lock@example.com", password: "wrong password 1") { __typename } }';
    for (let i = 0; i < 5; i++) await t.gql(query);
    const locked = await t.gql(query);
    expect(locked.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect(await backends.redis.exists('onramp:limits:sign_in.account:account:redis-lock@example.com')).toBe(
      1,
    );
    expect(
      await t.app.deps.db.prisma.rateLimit.count({ where: { key: 'account:redis-lock@example.com' } }),
    ).toBe(0);
  });
});
