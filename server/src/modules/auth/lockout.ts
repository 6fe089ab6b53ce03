/**
 * Growing lockout after repeated attempts, per key (an account, an address): after `threshold`
 * attempts within the window the key is blocked for `baseSeconds`, and each further lockout
 * doubles it (capped). A success clears the key (or gives its attempt back, see `refund`).
 *
 * Attempts are reserved before they are evaluated (docs/decisions/016): `reserve` counts the
 * attempt and answers whether it may go ahead in one atomic step, so N concurrent attempts can
 * never all read "not locked" before any failure is written; at most `threshold` of them are
 * evaluated. The counters live in a store every instance shares: PostgreSQL by default, Redis
 * when REDIS_URL is set.
 */
import type { Redis } from 'ioredis';
import type { CentralPrisma } from '../../db/database.js';
import { execute } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';

export interface LockoutPolicy {
  threshold: number;
  baseSeconds: number;
  maxSeconds: number;
  windowSeconds: number;
}

export type LockoutOptions = Partial<LockoutPolicy>;

export interface LimitStore {
  /** Seconds until the key may try again, or 0. */
  retryAfter(scope: string, key: string): Promise<number>;
  /**
   * Counts one attempt (blocking the key when it reaches the threshold). Gated: only while the
   * key is not blocked, atomically with that check. @returns 0 when counted, else the seconds the
   * key is still blocked (nothing counted).
   */
  count(scope: string, key: string, policy: LockoutPolicy, gated: boolean): Promise<number>;
  /** Gives back one counted attempt, unless the key is blocked meanwhile. */
  refund(scope: string, key: string): Promise<void>;
  clear(scope: string, key: string): Promise<void>;
  /**
   * Forgets keys long quiet (a day since their window, not blocked): the reconcile pass's, never
   * a request's. @returns how many went.
   */
  prune(): Promise<number>;
}

export class Lockout {
  private readonly policy: LockoutPolicy;

  constructor(
    private readonly store: LimitStore,
    /** Namespace of the keys, e.g. `sign_in.account`. */
    private readonly scope: string,
    options: LockoutOptions = {},
  ) {
    this.policy = {
      threshold: options.threshold ?? 5,
      baseSeconds: options.baseSeconds ?? 60,
      maxSeconds: options.maxSeconds ?? 3600,
      windowSeconds: options.windowSeconds ?? 900,
    };
  }

  retryAfter(key: string): Promise<number> {
    return this.store.retryAfter(this.scope, key);
  }

  /**
   * Reserves an attempt before it is evaluated. @returns 0 when it may go ahead (it is counted),
   * else the seconds to wait (refused, not counted).
   */
  reserve(key: string): Promise<number> {
    return this.store.count(this.scope, key, this.policy, true);
  }

  /** Counts a failure whatever the key's state (a failure that was not reserved first). */
  async fail(key: string): Promise<void> {
    await this.store.count(this.scope, key, this.policy, false);
  }

  /** A reserved attempt turned out legitimate: it no longer counts against the key. */
  refund(key: string): Promise<void> {
    return this.store.refund(this.scope, key);
  }

  succeed(key: string): Promise<void> {
    return this.store.clear(this.scope, key);
  }
}

/** Counters in the central database's `rate_limits` table. */
export function postgresLimitStore(db: Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>): LimitStore {
  const retryAfter = async (scope: string, key: string) => {
    const [row] = await db.$queryRaw<{ wait: number | null }[]>`
      SELECT ceil(extract(epoch FROM blocked_until - now()))::int AS wait
        FROM rate_limits WHERE scope = ${scope} AND key = ${key} AND blocked_until > now()`;
    return Math.max(0, row?.wait ?? 0);
  };
  return {
    retryAfter,
    async count(scope, key, p, gated) {
      // One statement: ON CONFLICT locks the row, so concurrent attempts on one key are counted
      // one after the other, each against the count (and block) the previous one left.
      // Through the pool, without Prisma's engine (db/raw.ts): one statement of every code request.
      const counted = await execute(
        db,
        Prisma.sql`
        INSERT INTO rate_limits AS r (scope, key, failures, window_started_at, lockouts, blocked_until)
        VALUES (${scope}, ${key}, CASE WHEN ${p.threshold} <= 1 THEN 0 ELSE 1 END, now(),
                CASE WHEN ${p.threshold} <= 1 THEN 1 ELSE 0 END,
                CASE WHEN ${p.threshold} <= 1 THEN now() + make_interval(secs => ${p.baseSeconds}) END)
        ON CONFLICT (scope, key) DO UPDATE SET
          failures = CASE
            WHEN r.window_started_at < now() - make_interval(secs => ${p.windowSeconds}) THEN 1
            WHEN r.failures + 1 >= ${p.threshold} THEN 0
            ELSE r.failures + 1 END,
          window_started_at = CASE
            WHEN r.window_started_at < now() - make_interval(secs => ${p.windowSeconds}) THEN now()
            ELSE r.window_started_at END,
          blocked_until = CASE
            WHEN r.window_started_at >= now() - make_interval(secs => ${p.windowSeconds}) AND r.failures + 1 >= ${p.threshold}
            THEN now() + make_interval(secs => least(${p.maxSeconds}, ${p.baseSeconds} * power(2, r.lockouts)))
            ELSE r.blocked_until END,
          lockouts = CASE
            WHEN r.window_started_at >= now() - make_interval(secs => ${p.windowSeconds}) AND r.failures + 1 >= ${p.threshold}
            THEN r.lockouts + 1
            ELSE r.lockouts END
        WHERE NOT ${gated} OR r.blocked_until IS NULL OR r.blocked_until <= now()`,
      );
      if (counted > 0) return 0;
      // Refused: the block that refused it may have just ended; wait at least a second.
      return Math.max(1, await retryAfter(scope, key));
    },
    async refund(scope, key) {
      await db.$executeRaw`
        UPDATE rate_limits SET failures = failures - 1
         WHERE scope = ${scope} AND key = ${key} AND failures > 0
           AND (blocked_until IS NULL OR blocked_until <= now())`;
    },
    async clear(scope, key) {
      await db.$executeRaw`DELETE FROM rate_limits WHERE scope = ${scope} AND key = ${key}`;
    },
    prune() {
      return db.$executeRaw`DELETE FROM rate_limits
        WHERE window_started_at < now() - interval '1 day' AND (blocked_until IS NULL OR blocked_until < now())`;
    },
  };
}

/** Same rules as the PostgreSQL store, as one Lua script per update (atomic in Redis). */
const COUNT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'failures', 'window', 'lockouts', 'blocked')
local failures = tonumber(h[1]) or 0
local window = tonumber(h[2]) or 0
local lockouts = tonumber(h[3]) or 0
local blocked = tonumber(h[4]) or 0
local threshold, base, max, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
if ARGV[5] == '1' and blocked > now then return math.max(1, math.ceil((blocked - now) / 1000)) end
if window == 0 or now - window > span * 1000 then failures = 0; window = now end
failures = failures + 1
if failures >= threshold then
  blocked = now + math.min(max, base * (2 ^ lockouts)) * 1000
  lockouts = lockouts + 1
  failures = 0
end
redis.call('HSET', KEYS[1], 'failures', failures, 'window', window, 'lockouts', lockouts, 'blocked', blocked)
redis.call('PEXPIRE', KEYS[1], math.max(span * 1000, blocked - now) + 86400000)
return 0`;

const REFUND_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'failures', 'blocked')
if (tonumber(h[1]) or 0) > 0 and (tonumber(h[2]) or 0) <= now then redis.call('HINCRBY', KEYS[1], 'failures', -1) end
return 0`;

const WAIT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local blocked = tonumber(redis.call('HGET', KEYS[1], 'blocked')) or 0
if blocked <= now then return 0 end
return math.ceil((blocked - now) / 1000)`;

/** Counters in Redis (REDIS_URL), keyed `onramp:limits:<scope>:<key>`. */
export function redisLimitStore(redis: Redis): LimitStore {
  const redisKey = (scope: string, key: string) => `onramp:limits:${scope}:${key}`;
  return {
    async retryAfter(scope, key) {
      return Number(await redis.eval(WAIT_SCRIPT, 1, redisKey(scope, key)));
    },
    async count(scope, key, p, gated) {
      return Number(
        await redis.eval(
          COUNT_SCRIPT,
          1,
          redisKey(scope, key),
          p.threshold,
          p.baseSeconds,
          p.maxSeconds,
          p.windowSeconds,
          gated ? 1 : 0,
        ),
      );
    },
    async refund(scope, key) {
      await redis.eval(REFUND_SCRIPT, 1, redisKey(scope, key));
    },
    async clear(scope, key) {
      await redis.del(redisKey(scope, key));
    },
    // Every key expires with its window.
    prune: async () => 0,
  };
}
