/**
 * The onboarding service's rate limits (integration guide, "Rate Limiting"): fixed windows
 * counted in a store every instance shares — the central database's `request_counters`, or
 * Redis when REDIS_URL is set (the same choice as auth/lockout.ts). Each hit is one atomic
 * statement (one Lua script in Redis), so concurrent requests cannot both take the last slot.
 */
import type { Redis } from 'ioredis';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { RateLimitExceeded } from './errors.js';

export interface CounterStore {
  /** Counts one request of `key`; returns the count in the current window and its seconds left. */
  hit(scope: string, key: string, windowSeconds: number): Promise<{ count: number; resetSeconds: number }>;
  /** Gives back one hit of the current window (a request that turned out not to count). */
  release(scope: string, key: string): Promise<void>;
}

export function postgresCounterStore(db: Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>): CounterStore {
  return {
    async hit(scope, key, windowSeconds) {
      const [row] = await db.$queryRaw<{ count: number; reset: number }[]>`
        INSERT INTO request_counters AS c (scope, key, count, window_started_at)
        VALUES (${scope}, ${key}, 1, now())
        ON CONFLICT (scope, key) DO UPDATE SET
          count = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN 1 ELSE c.count + 1 END,
          window_started_at = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN now() ELSE c.window_started_at END
        RETURNING count,
          ceil(extract(epoch FROM c.window_started_at + make_interval(secs => ${windowSeconds}) - now()))::int AS reset`;
      if (Math.random() < 0.01) {
        // Now and then, forget windows that are long over.
        await db.$executeRaw`DELETE FROM request_counters WHERE window_started_at < now() - interval '2 days'`;
      }
      return { count: row?.count ?? 1, resetSeconds: Math.max(1, row?.reset ?? windowSeconds) };
    },
    async release(scope, key) {
      await db.$executeRaw`UPDATE request_counters SET count = greatest(count - 1, 0)
                            WHERE scope = ${scope} AND key = ${key}`;
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
  };
}

export interface RateRule {
  /** Requests allowed per window. */
  max: number;
  windowSeconds: number;
}

export type LimitName = 'start' | 'provision' | 'status' | 'ip';

export type OnboardingLimitsConfig = Record<LimitName, RateRule>;

/** What a request may still do under the limit that applied to it (X-RateLimit-* headers). */
export interface RateState {
  limit: number;
  remaining: number;
  resetSeconds: number;
}

export class OnboardingLimits {
  constructor(
    private readonly store: CounterStore,
    private readonly rules: OnboardingLimitsConfig,
  ) {}

  static fromConfig(store: CounterStore, config: Pick<Config, 'onboardingLimits'>): OnboardingLimits {
    return new OnboardingLimits(store, config.onboardingLimits);
  }

  /**
   * Counts one request against `name` for `key`.
   * @throws RateLimitExceeded when the window's budget was already spent.
   */
  async take(name: LimitName, key: string): Promise<RateState> {
    const rule = this.rules[name];
    const { count, resetSeconds } = await this.store.hit(`onboarding.${name}`, key, rule.windowSeconds);
    if (count > rule.max) throw new RateLimitExceeded(name, resetSeconds, rule.max);
    return { limit: rule.max, remaining: rule.max - count, resetSeconds };
  }

  /** Gives back the hit of a request that must not count (e.g. a provisioning that failed). */
  release(name: LimitName, key: string): Promise<void> {
    return this.store.release(`onboarding.${name}`, key);
  }
}
