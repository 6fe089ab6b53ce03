/**
 * Webhook signatures, Stripe's scheme: each delivery carries
 *
 *   Onramp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(endpoint secret, "<t>.<raw body>")>
 *
 * The timestamp is signed with the body, so a receiver that refuses timestamps older than a few
 * minutes refuses a captured delivery sent again later. This file depends on node:crypto alone:
 * an integrator can copy {@link verifyWebhookSignature} into its receiver (README, "Webhooks").
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const WEBHOOK_SIGNATURE_HEADER = 'onramp-signature';
/** How old (or how far ahead) a delivery's timestamp may be by default, in seconds. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** The header value for `body` signed at `timestamp` (Unix seconds). */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  const digest = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${digest}`;
}

export type WebhookVerification =
  | { ok: true; timestamp: number }
  | { ok: false; reason: 'malformed' | 'mismatch' | 'expired' };

/**
 * Whether `header` signs `body` with `secret`, within `toleranceSeconds` of `now`.
 * Pass the body's raw bytes as received: a re-serialised JSON object would not verify.
 * Several `v1=` entries are accepted (any may match), as a receiver may see during a rotation.
 */
export function verifyWebhookSignature(
  secret: string,
  header: string | null | undefined,
  body: string | Buffer,
  options: { toleranceSeconds?: number; now?: number } = {},
): WebhookVerification {
  const parts = (header ?? '').split(',').map((part) => part.trim().split('='));
  const t = parts.find(([key]) => key === 't')?.[1];
  const candidates = parts.filter(([key, value]) => key === 'v1' && /^[0-9a-f]{64}$/.test(value ?? ''));
  if (!t || !/^\d{1,12}$/.test(t) || candidates.length === 0) return { ok: false, reason: 'malformed' };
  const timestamp = Number(t);
  const expected = createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
  const matches = candidates.some(([, value]) => timingSafeEqual(expected, Buffer.from(value ?? '', 'hex')));
  if (!matches) return { ok: false, reason: 'mismatch' };
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - timestamp) > (options.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS)) {
    return { ok: false, reason: 'expired' };
  }
  return { ok: true, timestamp };
}
