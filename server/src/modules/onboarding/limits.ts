/**
 * The onboarding service's rate limits (README, "Onboarding service"; ONBOARDING_*_LIMIT): fixed windows
 * counted in the shared store of limits/counters.ts (PostgreSQL, or Redis with REDIS_URL).
 */
import type { Config } from '../../env.js';
import { RateLimitedError } from '../../errors.js';
import type { CounterStore, RateRule } from '../../limits/counters.js';

export {
  type CounterStore,
  postgresCounterStore,
  type RateRule,
  redisCounterStore,
} from '../../limits/counters.js';

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
   * @throws RateLimitedError when the window's budget was already spent.
   */
  async take(name: LimitName, key: string): Promise<RateState> {
    const rule = this.rules[name];
    const { count, resetSeconds } = await this.store.hit(`onboarding.${name}`, key, rule.windowSeconds);
    if (count > rule.max) throw new RateLimitedError(resetSeconds, rule.max, name);
    return { limit: rule.max, remaining: rule.max - count, resetSeconds };
  }

  /** Gives back the hit of a request that must not count (e.g. a provisioning that failed). */
  release(name: LimitName, key: string): Promise<void> {
    return this.store.release(`onboarding.${name}`, key);
  }
}
