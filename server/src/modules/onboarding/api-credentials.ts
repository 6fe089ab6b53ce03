/**
 * An onboarding's API credentials (`ak_…` / `as_…`, handed out once by provision) authenticate
 * the tenant's own calls: `GET /api/v1/onboarding/status/{uuid}` for its onboarding and the
 * webhook routes. A request carries
 *
 *   X-Api-Key: ak_…
 *   X-Onramp-Timestamp: <unix seconds>
 *   X-Onramp-Signature: v1=<hex HMAC-SHA256(api_secret, "<timestamp>\n<METHOD>\n<path?query>\n<hex sha256(body)>")>
 *
 * The timestamp must be within 5 minutes of the server's clock, and each signature is accepted
 * once (kept in `api_request_signatures` for the window): a captured request cannot be replayed,
 * nor altered (method, path, body and time are all signed). The secret is kept encrypted
 * (AES-256-GCM, the onboarding's id as associated data), since verifying an HMAC needs it.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { decryptSecret, encryptSecret } from '../../crypto.js';
import type { CentralPrisma } from '../../db/database.js';
import { NotFoundError } from '../../errors.js';
import { type Onboarding, Prisma } from '../../generated/central/client.js';
import { recordAudit } from '../audit/record.js';
import type { Actor, ApplicationPrincipal } from './applications.js';
import { newApiCredentials, sameHash, sha256 } from './keys.js';

export const API_KEY_HEADER = 'x-api-key';
export const TIMESTAMP_HEADER = 'x-onramp-timestamp';
export const SIGNATURE_HEADER = 'x-onramp-signature';
/** How far a request's timestamp may be from the server's clock, either way. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;
const API_KEY = /^ak_([0-9a-f]{24})$/;
const SIGNATURE = /^v1=([0-9a-f]{64})$/;
/** A digest no key has: compared against when the key id is unknown, so both paths cost the same. */
const NO_KEY_HASH = sha256('no such api key');

/** Who called with valid API credentials: one onboarding of one application. */
export interface TenantPrincipal {
  onboardingId: string;
  applicationId: string;
}

/** Why a signed request was refused; the message is safe to show to the caller. */
export class ApiSignatureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApiSignatureError';
  }
}

/** The string that is signed; exported for integrators' tests and the README's example. */
export function canonicalRequest(
  method: string,
  path: string,
  timestamp: string,
  body: Buffer | string,
): string {
  return [timestamp, method.toUpperCase(), path, createHash('sha256').update(body).digest('hex')].join('\n');
}

/** `v1=<hex>`: what a client puts in X-Onramp-Signature. */
export function signRequest(
  secret: string,
  request: { method: string; path: string; timestamp: string; body: Buffer | string },
): string {
  const canonical = canonicalRequest(request.method, request.path, request.timestamp, request.body);
  return `v1=${createHmac('sha256', secret).update(canonical).digest('hex')}`;
}

/**
 * The condition on which an onboarding's credentials may be written: its application holds a
 * live master key, share-locked until the writer commits. A revocation of that key waits for the
 * writer and then clears what it wrote (applications.ts); a writer that comes after the
 * revocation finds no key and writes nothing, though its request was authenticated before.
 */
export function whileKeyed(applicationId: string): Prisma.Sql {
  return Prisma.sql`EXISTS (SELECT 1 FROM application_keys
                             WHERE application_id = ${applicationId}::uuid AND revoked_at IS NULL FOR SHARE)`;
}

/** {@link whileKeyed} on its own, in transaction `tx`: the key stays share-locked until it commits. */
export async function holdsLiveKey(
  tx: Pick<Prisma.TransactionClient, '$queryRaw'>,
  applicationId: string,
): Promise<boolean> {
  const [keyed] = await tx.$queryRaw<{ keyed: boolean }[]>`SELECT ${whileKeyed(applicationId)} AS keyed`;
  return keyed?.keyed === true;
}

/** Columns of a newly issued pair, and the plaintexts shown once. */
export function issueApiCredentials(onboardingId: string, encryptionKey: Buffer) {
  const credentials = newApiCredentials();
  return {
    apiKey: credentials.apiKey.plaintext,
    apiSecret: credentials.apiSecret.plaintext,
    data: {
      apiKeyId: credentials.apiKey.keyId,
      apiKeyHash: credentials.apiKey.hash,
      apiSecretEncrypted: encryptSecret(credentials.apiSecret.plaintext, encryptionKey, onboardingId),
    },
  };
}

export class ApiCredentialService {
  constructor(
    private readonly prisma: CentralPrisma,
    private readonly encryptionKey: Buffer,
  ) {}

  /**
   * The onboarding whose credentials signed this request.
   * @param path the request target as sent (path and query)
   * @throws ApiSignatureError (answered 401)
   */
  async authenticate(
    headers: Record<string, string | string[] | undefined>,
    method: string,
    path: string,
    body: Buffer,
  ): Promise<TenantPrincipal> {
    const presented = headers[API_KEY_HEADER];
    const timestamp = headers[TIMESTAMP_HEADER];
    const signature = headers[SIGNATURE_HEADER];
    if (typeof presented !== 'string' || typeof timestamp !== 'string' || typeof signature !== 'string') {
      throw new ApiSignatureError(
        `Send ${headerName(API_KEY_HEADER)}, ${headerName(TIMESTAMP_HEADER)} and ${headerName(SIGNATURE_HEADER)}`,
      );
    }
    if (!/^\d{1,12}$/.test(timestamp)) throw new ApiSignatureError('The timestamp must be Unix seconds');
    if (Math.abs(Date.now() / 1000 - Number(timestamp)) > SIGNATURE_TOLERANCE_SECONDS) {
      throw new ApiSignatureError(
        `The timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} s from the server's clock`,
      );
    }
    const digest = SIGNATURE.exec(signature)?.[1];
    if (!digest) throw new ApiSignatureError('The signature must be v1=<64 hex digits>');
    const keyId = API_KEY.exec(presented.trim())?.[1];
    const row = keyId
      ? await this.prisma.onboarding.findUnique({
          where: { apiKeyId: keyId },
          select: { id: true, applicationId: true, apiKeyHash: true, apiSecretEncrypted: true },
        })
      : null;
    const known = sameHash(sha256(presented.trim()), row?.apiKeyHash ?? NO_KEY_HASH);
    if (!row || !known || !row.apiSecretEncrypted) throw new ApiSignatureError('Invalid or revoked API key');
    const secret = decryptSecret(row.apiSecretEncrypted, this.encryptionKey, row.id);
    const expected = signRequest(secret, { method, path, timestamp, body }).slice(3);
    if (!timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(digest, 'hex'))) {
      throw new ApiSignatureError('The signature does not match the request');
    }
    // Accepted once: the insert is the check, so two concurrent replays cannot both pass.
    const expiresAt = new Date((Number(timestamp) + SIGNATURE_TOLERANCE_SECONDS) * 1000);
    const inserted = await this.prisma.$executeRaw`
      INSERT INTO api_request_signatures (signature, expires_at) VALUES (${digest}, ${expiresAt})
      ON CONFLICT (signature) DO NOTHING`;
    if (inserted === 0) throw new ApiSignatureError('This signature was already used (replay)');
    return { onboardingId: row.id, applicationId: row.applicationId };
  }

  /**
   * Forgets used signatures past their window (their timestamp refuses them anyway): the
   * reconcile pass's, never a request's. @returns how many went.
   */
  prune(): Promise<number> {
    return this.prisma.$executeRaw`DELETE FROM api_request_signatures WHERE expires_at < now()`;
  }

  /**
   * A new pair for an onboarding of `app`; the previous one stops working at once.
   * @throws NotFoundError, also when it is not provisioned yet (no credentials before that) and
   * when the application's key was revoked while this was asked ({@link whileKeyed})
   */
  async rotate(
    app: ApplicationPrincipal,
    uuid: string,
    actor: Actor,
  ): Promise<{ onboarding: Onboarding; apiKey: string; apiSecret: string }> {
    const issued = issueApiCredentials(uuid, this.encryptionKey);
    const onboarding = await this.replace(app, uuid, actor, 'onboarding.api_key_rotated', {
      ...issued.data,
      apiKeyRotatedAt: new Date(),
    });
    return { onboarding, apiKey: issued.apiKey, apiSecret: issued.apiSecret };
  }

  /** Revokes the onboarding's credentials; rotate issues new ones. @throws NotFoundError */
  revoke(app: ApplicationPrincipal, uuid: string, actor: Actor): Promise<Onboarding> {
    return this.replace(app, uuid, actor, 'onboarding.api_key_revoked', {
      apiKeyId: null,
      apiKeyHash: null,
      apiSecretEncrypted: null,
    });
  }

  private replace(
    app: ApplicationPrincipal,
    uuid: string,
    actor: Actor,
    action: 'onboarding.api_key_rotated' | 'onboarding.api_key_revoked',
    data: {
      apiKeyId: string | null;
      apiKeyHash: string | null;
      apiSecretEncrypted: string | null;
      apiKeyRotatedAt?: Date;
    },
  ): Promise<Onboarding> {
    return this.prisma.$transaction(async (tx) => {
      const found = await tx.onboarding.findFirst({
        where: { id: uuid, applicationId: app.applicationId, status: { not: 'pending' } },
      });
      if (!found) throw new NotFoundError('provisioned onboarding');
      // Issued only while the application holds a live key; a revocation clears it anyway.
      if (data.apiKeyId !== null) {
        if (!(await holdsLiveKey(tx, app.applicationId))) throw new NotFoundError('provisioned onboarding');
      }
      const updated = await tx.onboarding.update({ where: { id: uuid }, data });
      await recordAudit(tx, {
        action,
        actorId: actor.userId,
        targetType: 'onboarding',
        targetId: uuid,
        data: { applicationId: app.applicationId, hadKey: found.apiKeyId !== null },
        ip: actor.ip,
      });
      return updated;
    });
  }
}

/** `x-api-key` → `X-Api-Key`, for messages. */
function headerName(lower: string): string {
  return lower.replace(
    /(^|-)([a-z])/g,
    (_match, dash: string, letter: string) => dash + letter.toUpperCase(),
  );
}
