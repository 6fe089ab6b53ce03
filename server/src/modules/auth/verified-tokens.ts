/**
 * Access tokens this instance has verified, so that the signature of a token is checked once,
 * not on every request it comes with (docs/decisions/059). A signature's validity cannot
 * change; what can is time, so a recognised token is refused once its `exp` has passed, as
 * `jwtVerify` would. Whether its session is still live is not this cache's business: the
 * session check (session-cache.ts) runs after it on every request.
 *
 * Entries are keyed by the token's SHA-256, not the token, so the lookup compares digests of
 * what a caller sent, never the secret string itself; only tokens that verified are kept, so a
 * caller cannot fill the cache with forgeries.
 */
import { createHash } from 'node:crypto';
import type { JWTPayload } from 'jose';

export interface VerifiedTokensOptions {
  /**
   * Tokens kept at most; the oldest go first.
   * @default 10000
   */
  maxEntries?: number;
}

export class VerifiedTokens {
  private readonly entries = new Map<string, JWTPayload>();
  private readonly maxEntries: number;
  /** Signatures checked and tokens recognised (tests). */
  readonly stats = { verified: 0, recognised: 0 };

  /** @param verify checks signature and claims (jose's `jwtVerify`), throwing when they fail. */
  constructor(
    private readonly verify: (token: string) => Promise<JWTPayload>,
    options: VerifiedTokensOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  /** The claims of `token`, verified now or before; throws what `verify` throws. */
  async payload(token: string): Promise<JWTPayload> {
    const key = createHash('sha256').update(token).digest('base64url');
    const known = this.entries.get(key);
    if (known && typeof known.exp === 'number' && known.exp * 1000 > Date.now()) {
      this.stats.recognised += 1;
      return known;
    }
    this.entries.delete(key);
    const payload = await this.verify(token);
    this.stats.verified += 1;
    if (typeof payload.exp === 'number') {
      if (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
      this.entries.set(key, payload);
    }
    return payload;
  }
}
