/** The fixed-window counters behind the onboarding rate limits, on both backends. */
import { describe, expect, it } from 'vitest';
import { storeBackends } from '../../../test/harness.js';
import { RateLimitedError } from '../../errors.js';
import { type CounterStore, OnboardingLimits, postgresCounterStore, redisCounterStore } from './limits.js';

async function stores(): Promise<[string, CounterStore][]> {
  const { prisma, redis } = await storeBackends('counters');
  return [
    ['PostgreSQL', postgresCounterStore(prisma)],
    ['Redis', redisCounterStore(redis)],
  ];
}

const rule = (max: number, windowSeconds: number) => ({ max, windowSeconds });

describe.each(await stores())('counters on %s', (_name, store) => {
  it('allows max requests per window, then refuses with the seconds left', async () => {
    const limits = new OnboardingLimits(store, {
      start: rule(3, 3600),
      provision: rule(1, 86_400),
      status: rule(100, 3600),
      ip: rule(50, 3600),
    });
    const key = `k-${Math.random()}`;
    expect((await limits.take('start', key)).remaining).toBe(2);
    expect((await limits.take('start', key)).remaining).toBe(1);
    expect(await limits.take('start', key)).toMatchObject({ limit: 3, remaining: 0 });
    const refused = await limits.take('start', key).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect((refused as RateLimitedError).retryAfterSeconds).toBeGreaterThan(3590);
    expect((refused as RateLimitedError).retryAfterSeconds).toBeLessThanOrEqual(3600);
    // Other keys and other limits have their own budgets.
    expect((await limits.take('start', `${key}-other`)).remaining).toBe(2);
    expect((await limits.take('status', key)).remaining).toBe(99);
  });

  it('counts concurrent requests exactly', async () => {
    const key = `c-${Math.random()}`;
    const counts = await Promise.all(Array.from({ length: 20 }, () => store.hit('test', key, 60)));
    expect(counts.map((hit) => hit.count).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });

  it('gives a hit back, never below zero', async () => {
    const key = `r-${Math.random()}`;
    await store.hit('test', key, 60);
    await store.hit('test', key, 60);
    await store.release('test', key);
    expect((await store.hit('test', key, 60)).count).toBe(2);
    await store.release('test', key);
    await store.release('test', key);
    await store.release('test', key);
    expect((await store.hit('test', key, 60)).count).toBe(1);
  });

  it('starts a new window when the previous one is over', async () => {
    const key = `w-${Math.random()}`;
    await store.hit('test', key, 1);
    expect((await store.hit('test', key, 1)).count).toBe(2);
    // Hits keep counting up within the window; the first hit of the next one counts 1 again.
    const counts: number[] = [];
    await expect
      .poll(
        async () => {
          counts.push((await store.hit('test', key, 1)).count);
          return counts.at(-1);
        },
        { timeout: 5_000, interval: 50 },
      )
      .toBe(1);
    const lastOfWindow = counts.slice(0, -1);
    expect(lastOfWindow).toEqual(lastOfWindow.map((_, i) => i + 3));
  });
});

describe('pruning the PostgreSQL counters', () => {
  it('forgets windows over for two days, keeps the others, and never runs on a hit', async () => {
    const { prisma } = await storeBackends('counters');
    const store = postgresCounterStore(prisma);
    const old = `old-${Math.random()}`;
    const live = `live-${Math.random()}`;
    await store.hit('prune', old, 60);
    await store.hit('prune', live, 60);
    await prisma.$executeRaw`UPDATE request_counters SET window_started_at = now() - interval '3 days'
                             WHERE scope = 'prune' AND key = ${old}`;
    for (let i = 0; i < 300; i++) await store.hit('prune', live, 60);
    const keys = async () =>
      (await prisma.requestCounter.findMany({ where: { scope: 'prune' }, select: { key: true } }))
        .map((row) => row.key)
        .sort();
    expect(await keys()).toEqual([live, old].sort()); // 300 hits later, still there: hits do not prune
    await store.prune();
    expect(await keys()).toEqual([live]);
  });
});
