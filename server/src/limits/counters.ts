/**
 * Fixed-window request counters every instance shares — the central database's
 * `request_counters`, or Redis when REDIS_URL is set (the same choice as auth/lockout.ts). Each
 * hit is one atomic statement (one Lua script in Redis), so concurrent requests cannot both take
 * the last slot: a burst of N parallel requests gets exactly `max` through.
 *
 * Used by the onboarding service's limits and by the GraphQL limits of {@link RateLimit}
 * (registrations, invitations).
 */
import type { Redis } from 'ioredis';
import type { CentralPrisma } from '../db/database.js';
import { execute, queryRows } from '../db/raw.js';
import { RateLimitedError } from '../errors.js';
import { Prisma } from '../generated/central/client.js';

export interface CounterStore {
  /** Counts one request of `key`; returns the count in the current window and its seconds left. */
  hit(scope: string, key: string, windowSeconds: number): Promise<{ count: number; resetSeconds: number }>;
  /** Gives back one hit of the current window (a request that turned out not to count). */
  release(scope: string, key: string): Promise<void>;
  /**
   * Forgets windows that are long over: the periodic reconcile pass's, never a request's (a
   * request paying for it now and then made its statement count vary, decision 075).
   */
  prune(): Promise<void>;
}

export function postgresCounterStore(db: Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>): CounterStore {
  return {
    async hit(scope, key, windowSeconds) {
      // Through pg beside Prisma's engine when `db` is a pooled client (db/raw.ts, decision 070).
      const [row] = await queryRows<{ count: number; reset: number }>(
        db,
        Prisma.sql`
        INSERT INTO request_counters AS c (scope, key, count, window_started_at)
        VALUES (${scope}, ${key}, 1, now())
        ON CONFLICT (scope, key) DO UPDATE SET
          count = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN 1 ELSE c.count + 1 END,
          window_started_at = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN now() ELSE c.window_started_at END
        RETURNING count,
          ceil(extract(epoch FROM c.window_started_at + make_interval(secs => ${windowSeconds}) - now()))::int AS reset`,
      );
      return { count: row?.count ?? 1, resetSeconds: Math.max(1, row?.reset ?? windowSeconds) };
    },
    async release(scope, key) {
      await execute(
        db,
        Prisma.sql`UPDATE request_counters SET count = greatest(count - 1, 0)
                   WHERE scope = ${scope} AND key = ${key}`,
      );
    },
    async prune() {
      await execute(
        db,
        Prisma.sql`DELETE FROM request_counters WHERE window_started_at < now() - interval '2 days'`,
      );
    },
  };
}

const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 1000); ttl = tonumber(ARGV[1]) * 1000 end
return {count, ttl}`;

const RELEASE_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then redis.call('DECR', KEYS[1]) end
return 0`;

/** Counters in Redis, keyed `onramp:counters:<scope>:<key>`. */
export function redisCounterStore(redis: Redis): CounterStore {
  return {
    async hit(scope, key, windowSeconds) {
      const [count, ttl] = (await redis.eval(
        HIT_SCRIPT,
        1,
        `onramp:counters:${scope}:${key}`,
        windowSeconds,
      )) as [number, number];
      return { count, resetSeconds: Math.max(1, Math.ceil(ttl / 1000)) };
    },
    async release(scope, key) {
      await redis.eval(RELEASE_SCRIPT, 1, `onramp:counters:${scope}:${key}`);
    },
    async prune() {}, // every key expires with its window
  };
}

export interface RateRule {
  /** Requests allowed per window. */
  max: number;
  windowSeconds: number;
}

/**
 * One limit of `rule.max` attempts per window for each key (a client address, a clinic, or one
 * key for everyone), counted before the attempt is evaluated.
 */
export class RateLimit {
  constructor(
    private readonly store: CounterStore,
    /** Namespace of the keys, e.g. `registration.ip`. */
    private readonly scope: string,
    private readonly rule: RateRule,
  ) {}

  /**
   * Counts one attempt of `key`.
   * @throws RateLimitedError when the window's budget was already spent.
   */
  async take(key: string): Promise<void> {
    const { count, resetSeconds } = await this.store.hit(this.scope, key, this.rule.windowSeconds);
    if (count > this.rule.max) throw new RateLimitedError(resetSeconds);
  }

  /** Gives back an attempt that must not count (refused by another limit, failed on our side). */
  release(key: string): Promise<void> {
    return this.store.release(this.scope, key);
  }
}

/**
 * Takes every limit in order; when one refuses, the attempts already counted are given back
 * (a refused request spends no budget of the limits before it).
 * @throws the refusing limit's RateLimitedError
 */
export async function takeAll(limits: [RateLimit, string][]): Promise<void> {
  const taken: [RateLimit, string][] = [];
  try {
    for (const [limit, key] of limits) {
      await limit.take(key);
      taken.push([limit, key]);
    }
  } catch (error) {
    await Promise.all(taken.map(([limit, key]) => limit.release(key)));
    throw error;
  }
}
