/**
 * `Idempotency-Key` on the POST routes, after the IETF draft (draft-ietf-httpapi-idempotency-key-header):
 * the first response to a key is stored for 24 h, scoped to the caller; the same key with the
 * same request replays it, with another request body answers 422, and while the first request
 * is still running answers 409. Stored in the central database so every instance agrees.
 *
 * Two deliberate departures, both so that a retry can do its job: 5xx and 429 answers are not
 * stored (the key is released and the retry runs again), and secrets (`master_key`, `api_key`,
 * `api_secret`) are never stored — a replay answers `null` for them, since they are shown once.
 */
import { createHash } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { Prisma } from '../../generated/central/client.js';

const TTL_MS = 24 * 60 * 60_000;
/** A request still "running" after this is taken as crashed; the key may be used again. */
const LOCK_MS = 5 * 60_000;
const KEY = /^[\x21-\x7e]{1,255}$/;
const SECRET_FIELDS = new Set(['master_key', 'api_key', 'api_secret']);

export type IdempotencyBegin =
  | { kind: 'proceed' }
  | { kind: 'replay'; status: number; body: unknown }
  | { kind: 'mismatch' }
  | { kind: 'in_progress' };

/** The header's value (a bare token or a structured-field string `"…"`), or null when invalid. */
export function parseIdempotencyKey(header: string): string | null {
  const value = header.trim().replace(/^"(.*)"$/, '$1');
  return KEY.test(value) ? value : null;
}

/** Same method, path and JSON body (key order aside) → same fingerprint. */
export function fingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${path}\n${canonicalJson(body)}`)
    .digest('hex');
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A response as stored: secrets replaced by null, one level down too. */
export function withoutSecrets(body: unknown): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  return Object.fromEntries(
    Object.entries(body as Record<string, unknown>).map(([key, value]) =>
      SECRET_FIELDS.has(key) ? [key, null] : [key, withoutSecrets(value)],
    ),
  );
}

export class IdempotencyStore {
  constructor(private readonly prisma: CentralPrisma) {}

  /** Claims `key` for `owner`, or says what to answer instead. */
  async begin(owner: string, key: string, print: string): Promise<IdempotencyBegin> {
    // One statement claims a new key, or an expired or abandoned one; a live one is left alone.
    const claimed = await this.prisma.$queryRaw<{ claimed: boolean }[]>`
      INSERT INTO idempotency_keys AS i (owner, key, fingerprint, status, locked_until, expires_at)
      VALUES (${owner}, ${key}, ${print}, 'running', now() + make_interval(secs => ${LOCK_MS / 1000}),
              now() + make_interval(secs => ${TTL_MS / 1000}))
      ON CONFLICT (owner, key) DO UPDATE SET
        fingerprint = EXCLUDED.fingerprint, status = 'running', locked_until = EXCLUDED.locked_until,
        response_status = NULL, response_body = NULL, created_at = now(), expires_at = EXCLUDED.expires_at
      WHERE i.expires_at < now() OR (i.status = 'running' AND i.locked_until < now())
      RETURNING true AS claimed`;
    if (claimed.length > 0) return { kind: 'proceed' };
    const row = await this.prisma.idempotencyKey.findUnique({ where: { owner_key: { owner, key } } });
    if (!row) return this.begin(owner, key, print); // released meanwhile: try again
    if (row.fingerprint !== print) return { kind: 'mismatch' };
    if (row.status === 'running') return { kind: 'in_progress' };
    return { kind: 'replay', status: row.responseStatus ?? 200, body: row.responseBody };
  }

  /** Stores the response to replay, or releases the key for answers a retry should redo. */
  async finish(owner: string, key: string, status: number, body: unknown): Promise<void> {
    if (status >= 500 || status === 429) {
      await this.release(owner, key);
      return;
    }
    await this.prisma.idempotencyKey.update({
      where: { owner_key: { owner, key } },
      data: {
        status: 'done',
        lockedUntil: null,
        responseStatus: status,
        responseBody: withoutSecrets(body) as Prisma.InputJsonValue,
      },
    });
  }

  /** Forgets expired keys: the reconcile pass's, never a request's. @returns how many went. */
  prune(): Promise<number> {
    return this.prisma.$executeRaw`DELETE FROM idempotency_keys WHERE expires_at < now()`;
  }

  async release(owner: string, key: string): Promise<void> {
    await this.prisma.idempotencyKey.deleteMany({ where: { owner, key, status: 'running' } });
  }
}
