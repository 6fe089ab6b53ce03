import { describe, expect, it } from 'vitest';
import { startTestApp, storeBackends } from '../../../test/harness.js';
import { type LimitStore, Lockout, postgresLimitStore, redisLimitStore } from './lockout.js';
import { hashPassword } from './passwords.js';

const backends = await storeBackends('limits');
const stores: [string, LimitStore][] = [
  ['PostgreSQL', postgresLimitStore(backends.prisma)],
  ['Redis', redisLimitStore(backends.redis)],
];

describe('the PostgreSQL store forgets quiet keys in the reconcile pass only', () => {
  const store = postgresLimitStore(backends.prisma);
  const row = (key: string, windowHoursAgo: number, blockedHours: number | null) => backends.prisma
    .$executeRaw`
    INSERT INTO rate_limits (scope, key, failures, window_started_at, lockouts, blocked_until)
    VALUES ('test.prune', ${key}, 1, now() - make_interval(hours => ${windowHoursAgo}), 0,
            ${blockedHours === null ? null : new Date(Date.now() + blockedHours * 3_600_000)}::timestamptz)`;
  const keys = async () =>
    (
      await backends.prisma.$queryRaw<{ key: string }[]>`
        SELECT key FROM rate_limits WHERE scope = 'test.prune' ORDER BY key`
    ).map((found) => found.key);

  it('counting never deletes a row (a request pays for its own statement only); prune takes the quiet ones', async () => {
    await row('quiet', 30, null);
    await row('recent', 2, null);
    await row('blocked', 30, 1);
    // 300 counts: with a 1 % prune on the request path, the quiet row went in 95 % of runs.
    const lockout = new Lockout(store, 'test.counted', { threshold: 1_000, baseSeconds: 60 });
    for (let i = 0; i < 300; i++) await lockout.fail(`k${i % 3}`);
    expect(await keys()).toEqual(['blocked', 'quiet', 'recent']);
    expect(await store.prune()).toBeGreaterThanOrEqual(1);
    expect(await keys()).toEqual(['blocked', 'recent']);
  });
});

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
    // 9 at once: one lockout (after the 5th), and 4 towards the next; none lost, none doubled.
    await Promise.all(Array.from({ length: 9 }, () => lockout.fail('k')));
    expect(await lockout.retryAfter('k')).toBeGreaterThanOrEqual(59);
    expect(await lockout.retryAfter('k')).toBeLessThanOrEqual(60);
    // The 10th is the second lockout, twice as long.
    await lockout.fail('k');
    expect(await lockout.retryAfter('k')).toBeGreaterThanOrEqual(119);
    expect(await lockout.retryAfter('k')).toBeLessThanOrEqual(120);
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

describe('sign-in from one client address', async () => {
  // Each request names its address (X-Forwarded-For behind one trusted proxy).
  const t = await startTestApp({
    TRUSTED_PROXIES: '1',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    // The address's share of the hashing slots would refuse most of a burst before the lockout
    // counts it; that share has its own test (hash-share.test.ts). Here the lockout decides.
    HASH_SLOTS_PER_ADDRESS: '1000',
  });
  const SIGN_IN =
    'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { __typename } }';
  const signIn = (email: string, password: string, address: string) =>
    t.gql<{ signInWithPassword: { __typename: string } }>(
      SIGN_IN,
      { e: email, p: password },
      { 'x-forwarded-for': address },
    );

  it('is locked out after 20 failures even when they arrive at once (a parallel burst of 30)', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        signIn(`burst-${i}@example.com`, 'wrong password 1', '198.51.100.20'),
      ),
    );
    const outcomes = answers.map((answer) =>
      answer.body.data
        ? answer.body.data.signInWithPassword.__typename
        : answer.body.errors?.[0]?.extensions?.code,
    );
    // Every attempt is counted before it is evaluated: exactly 20 are evaluated.
    expect(outcomes.filter((outcome) => outcome === 'InvalidCredentialsError')).toHaveLength(20);
    expect(outcomes.filter((outcome) => outcome === 'RATE_LIMITED')).toHaveLength(10);
  });

  it('costs about the same for an unknown e-mail as for a wrong password (medians, loosely)', async () => {
    // Both must run one argon2 verification. Loosely: an unknown e-mail answered without it
    // takes a few milliseconds against tens, far outside a factor of 3 either way.
    const accounts = await Promise.all(
      Array.from({ length: 7 }, async (_, i) =>
        t.app.deps.db.prisma.user.create({
          data: {
            email: `timed-${i}@example.com`,
            firstName: 'T',
            lastName: String(i),
            role: 'STAFF',
            emailVerifiedAt: new Date(),
            passwordHash: await hashPassword('the right passphrase 42'),
          },
        }),
      ),
    );
    const timed = async (email: string, address: string) => {
      const started = performance.now();
      const answer = await signIn(email, 'wrong password 1', address);
      const elapsed = performance.now() - started;
      expect(answer.body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
      return elapsed;
    };
    const known: number[] = [];
    const unknown: number[] = [];
    // Interleaved, one address per attempt and one attempt per account: no lockout takes part.
    for (const [i, account] of accounts.entries()) {
      known.push(await timed(account.email as string, `198.51.100.${100 + i}`));
      unknown.push(await timed(`nobody-${i}@example.com`, `198.51.100.${150 + i}`));
    }
    const median = (values: number[]) =>
      [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    const ratio = median(unknown) / median(known);
    expect(ratio).toBeGreaterThan(1 / 3);
    expect(ratio).toBeLessThan(3);
  });
});
