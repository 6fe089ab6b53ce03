/**
 * Limits taken together (registrations, invitations): one statement for all of them, and a
 * refused request spends no budget of the others, on both backends and under a parallel burst.
 */
import { describe, expect, it } from 'vitest';
import { storeBackends } from '../../test/harness.js';
import { RateLimitedError } from '../errors.js';
import {
  type CounterStore,
  postgresCounterStore,
  RateLimit,
  redisCounterStore,
  releaseAll,
  takeAll,
} from './counters.js';

async function stores(): Promise<[string, CounterStore][]> {
  const { prisma, redis } = await storeBackends('limits');
  return [
    ['PostgreSQL', postgresCounterStore(prisma)],
    ['Redis', redisCounterStore(redis)],
  ];
}

const refusals = (results: PromiseSettledResult<void>[]) =>
  results.filter((result) => result.status === 'rejected' && result.reason instanceof RateLimitedError)
    .length;

describe.each(await stores())('limits taken together on %s', (_name, store) => {
  it('counts every hit of one call, each in its own window, in the order given', async () => {
    const tag = Math.random();
    const hits = [
      { scope: 'a', key: `k-${tag}`, windowSeconds: 60 },
      { scope: 'b', key: `k-${tag}`, windowSeconds: 3600 },
      { scope: 'a', key: `other-${tag}`, windowSeconds: 5 },
    ];
    expect((await store.hitMany(hits)).map((hit) => hit.count)).toEqual([1, 1, 1]);
    await store.hit('b', `k-${tag}`, 3600);
    const counted = await store.hitMany(hits);
    expect(counted.map((hit) => hit.count)).toEqual([2, 3, 2]);
    expect(counted[0]?.resetSeconds).toBeLessThanOrEqual(60);
    expect(counted[1]?.resetSeconds).toBeGreaterThan(3590);
    expect(counted[2]?.resetSeconds).toBeLessThanOrEqual(5);
    await store.releaseMany(hits);
    expect((await store.hitMany(hits)).map((hit) => hit.count)).toEqual([2, 3, 2]);
  });

  it('a burst from one key gets exactly its budget, and the shared limit keeps what was refused', async () => {
    const tag = Math.random();
    const perKey = new RateLimit(store, `per-key-${tag}`, { max: 3, windowSeconds: 3600 });
    const overall = new RateLimit(store, `overall-${tag}`, { max: 8, windowSeconds: 3600 });
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, () =>
        takeAll([
          [perKey, 'one'],
          [overall, 'all'],
        ]),
      ),
    );
    expect(refusals(results)).toBe(9);
    // The 9 refused gave their attempt of the shared limit back: 3 are counted there, so 5 more
    // from other keys get through, and the next is refused.
    for (let i = 0; i < 5; i++) await overall.take('all');
    await expect(overall.take('all')).rejects.toBeInstanceOf(RateLimitedError);
  });

  it('a burst over many keys stops at the shared budget, and the refused keys keep theirs', async () => {
    const tag = Math.random();
    const perKey = new RateLimit(store, `per-key-${tag}`, { max: 1, windowSeconds: 3600 });
    const overall = new RateLimit(store, `overall-${tag}`, { max: 4, windowSeconds: 3600 });
    const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
    const results = await Promise.allSettled(
      keys.map((key) =>
        takeAll([
          [perKey, key],
          [overall, 'all'],
        ]),
      ),
    );
    expect(refusals(results)).toBe(8);
    // A key refused by the shared limit spent nothing of its own: it gets its one attempt later.
    const refusedKeys = keys.filter((_, i) => results[i]?.status === 'rejected');
    const passedKeys = keys.filter((_, i) => results[i]?.status === 'fulfilled');
    for (const key of refusedKeys) await perKey.take(key);
    for (const key of passedKeys) await expect(perKey.take(key)).rejects.toBeInstanceOf(RateLimitedError);
  });

  it('gives every attempt back at once (a request that must not count)', async () => {
    const tag = Math.random();
    const perKey = new RateLimit(store, `per-key-${tag}`, { max: 1, windowSeconds: 3600 });
    const overall = new RateLimit(store, `overall-${tag}`, { max: 1, windowSeconds: 3600 });
    const limits: [RateLimit, string][] = [
      [perKey, 'one'],
      [overall, 'all'],
    ];
    await takeAll(limits);
    await expect(takeAll(limits)).rejects.toBeInstanceOf(RateLimitedError);
    // The refused attempt of the first limit is still counted (it refused), the second's given back.
    await releaseAll(limits);
    await releaseAll(limits);
    await takeAll(limits);
  });
});
