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

/** One request of `key` in `scope`, counted in windows of `windowSeconds`. */
export interface Hit {
  scope: string;
  key: string;
  windowSeconds: number;
}

export interface CounterStore {
  /** Counts one request of `key`; returns the count in the current window and its seconds left. */
  hit(scope: string, key: string, windowSeconds: number): Promise<{ count: number; resetSeconds: number }>;
  /**
   * Counts one request of each hit in ONE statement (one script in Redis), returned in their
   * order; no two hits may share a scope and key.
   */
  hitMany(hits: readonly Hit[]): Promise<{ count: number; resetSeconds: number }[]>;
  /** Gives back one hit of the current window (a request that turned out not to count). */
  release(scope: string, key: string): Promise<void>;
  /** Gives back one hit of each, in one statement. */
  releaseMany(hits: readonly Pick<Hit, 'scope' | 'key'>[]): Promise<void>;
  /**
   * Forgets windows that are long over: the periodic reconcile pass's, never a request's (a
   * request paying for it now and then made its statement count vary, decision 075).
   */
  prune(): Promise<void>;
}

export function postgresCounterStore(db: Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>): CounterStore {
  const store: CounterStore = {
    async hit(scope, key, windowSeconds) {
      const [counted] = await store.hitMany([{ scope, key, windowSeconds }]);
      return counted ?? { count: 1, resetSeconds: windowSeconds };
    },
    async hitMany(hits) {
      // One upsert per hit, each its own CTE of one statement: each row's upsert is atomic, so a
      // burst still gets exactly `max` through each limit. Through pg beside Prisma's engine when
      // `db` is a pooled client (db/raw.ts, decision 070).
      const upserts = hits.map(
        ({ scope, key, windowSeconds }, i) => Prisma.sql`${Prisma.raw(`h${i}`)} AS (
        INSERT INTO request_counters AS c (scope, key, count, window_started_at)
        VALUES (${scope}, ${key}, 1, now())
        ON CONFLICT (scope, key) DO UPDATE SET
          count = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN 1 ELSE c.count + 1 END,
          window_started_at = CASE WHEN c.window_started_at <= now() - make_interval(secs => ${windowSeconds})
                       THEN now() ELSE c.window_started_at END
        RETURNING ${i}::int AS i, count,
          ceil(extract(epoch FROM c.window_started_at + make_interval(secs => ${windowSeconds}) - now()))::int AS reset)`,
      );
      const results = hits.map((_, i) => Prisma.sql`SELECT * FROM ${Prisma.raw(`h${i}`)}`);
      const rows = await queryRows<{ i: number; count: number; reset: number }>(
        db,
        Prisma.sql`WITH ${Prisma.join(upserts)} ${Prisma.join(results, ' UNION ALL ')}`,
      );
      return hits.map(({ windowSeconds }, i) => {
        const row = rows.find((counted) => counted.i === i);
        return { count: row?.count ?? 1, resetSeconds: Math.max(1, row?.reset ?? windowSeconds) };
      });
    },
    async release(scope, key) {
      await store.releaseMany([{ scope, key }]);
    },
    async releaseMany(hits) {
      await execute(
        db,
        Prisma.sql`UPDATE request_counters AS c SET count = greatest(c.count - 1, 0)
                   FROM unnest(${hits.map((hit) => hit.scope)}::text[], ${hits.map((hit) => hit.key)}::text[]) AS h(scope, key)
                   WHERE c.scope = h.scope AND c.key = h.key`,
      );
    },
    async prune() {
      await execute(
        db,
        Prisma.sql`DELETE FROM request_counters WHERE window_started_at < now() - interval '2 days'`,
      );
    },
  };
  return store;
}

/** KEYS: the counters; ARGV: each one's window in seconds. Returns count, ttl (ms) of each. */
const HIT_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[i]) * 1000
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('PEXPIRE', key, window) end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then redis.call('PEXPIRE', key, window); ttl = window end
  out[#out + 1] = count
  out[#out + 1] = ttl
end
return out`;

const RELEASE_SCRIPT = `
for _, key in ipairs(KEYS) do
  local count = tonumber(redis.call('GET', key) or '0')
  if count > 0 then redis.call('DECR', key) end
end
return 0`;

const redisKey = ({ scope, key }: Pick<Hit, 'scope' | 'key'>) => `onramp:counters:${scope}:${key}`;

/** Counters in Redis, keyed `onramp:counters:<scope>:<key>`. */
export function redisCounterStore(redis: Redis): CounterStore {
  const store: CounterStore = {
    async hit(scope, key, windowSeconds) {
      const [counted] = await store.hitMany([{ scope, key, windowSeconds }]);
      return counted ?? { count: 1, resetSeconds: windowSeconds };
    },
    async hitMany(hits) {
      const out = (await redis.eval(
        HIT_SCRIPT,
        hits.length,
        ...hits.map(redisKey),
        ...hits.map((hit) => hit.windowSeconds),
      )) as number[];
      return hits.map((_, i) => ({
        count: out[2 * i] ?? 1,
        resetSeconds: Math.max(1, Math.ceil((out[2 * i + 1] ?? 0) / 1000)),
      }));
    },
    async release(scope, key) {
      await store.releaseMany([{ scope, key }]);
    },
    async releaseMany(hits) {
      await redis.eval(RELEASE_SCRIPT, hits.length, ...hits.map(redisKey));
    },
    async prune() {}, // every key expires with its window
  };
  return store;
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
    readonly store: CounterStore,
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

  /** The hit an attempt of `key` counts. */
  hitOf(key: string): Hit {
    return { scope: this.scope, key, windowSeconds: this.rule.windowSeconds };
  }

  /** Whether `count` attempts in a window are over the limit. */
  refuses(count: number): boolean {
    return count > this.rule.max;
  }
}

/** The one store of `limits` (they are counted together, in its statements). */
function storeOf(limits: [RateLimit, string][]): CounterStore | undefined {
  const store = limits[0]?.[0].store;
  if (limits.some(([limit]) => limit.store !== store))
    throw new Error('limits taken together share one store');
  return store;
}

/**
 * Takes every limit at once, in one statement. When one refuses, every other gives its attempt
 * back in a second one: the end state of taking them in order and stopping at the first refusal
 * (a refused request spends no budget of the other limits). For the moment between the two
 * statements, the limits after the refusing one hold its attempt too, as those before it did when
 * they were taken one by one.
 * @throws the first refusing limit's RateLimitedError
 */
export async function takeAll(limits: [RateLimit, string][]): Promise<void> {
  const store = storeOf(limits);
  if (!store) return;
  const counted = await store.hitMany(limits.map(([limit, key]) => limit.hitOf(key)));
  const refused = limits.findIndex(([limit], i) => limit.refuses(counted[i]?.count ?? 0));
  if (refused === -1) return;
  await store.releaseMany(limits.filter((_, i) => i !== refused).map(([limit, key]) => limit.hitOf(key)));
  throw new RateLimitedError(counted[refused]?.resetSeconds ?? 1);
}

/** Gives back an attempt of every limit, in one statement (a request that must not count). */
export async function releaseAll(limits: [RateLimit, string][]): Promise<void> {
  await storeOf(limits)?.releaseMany(limits.map(([limit, key]) => limit.hitOf(key)));
}
