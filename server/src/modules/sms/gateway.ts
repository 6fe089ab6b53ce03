/**
 * SMS delivery. With SMS_GATEWAY_URL: an HTTP JSON gateway — `GET <url>` answers when it is up,
 * `POST <url>` with `{ to, text }` (Bearer SMS_GATEWAY_TOKEN) accepts a message with a 2xx.
 * Without it (development and test only): the dev outbox, kept in memory and readable through
 * `devSmsOutbox(to)`.
 */
import type { Config } from '../../env.js';
import type { Logger } from '../../logger.js';

export interface SmsGateway {
  name: 'http' | 'dev';
  /** Whether a message would be accepted now (a fast check before committing anything). */
  isAvailable(): Promise<boolean>;
  /** @throws SmsDeliveryError unless the gateway accepted the message. */
  send(to: string, text: string): Promise<void>;
  /** Dev outbox only: messages to `to`, newest first. */
  outbox(to: string): DevSms[];
}

export interface DevSms {
  to: string;
  text: string;
  at: Date;
}

export class SmsDeliveryError extends Error {
  override name = 'SmsDeliveryError';
}

const AVAILABILITY_TIMEOUT_MS = 2_000;
const SEND_TIMEOUT_MS = 5_000;
const DEV_OUTBOX_LIMIT = 200;

export function createSmsGateway(
  config: Pick<Config, 'smsGatewayUrl' | 'smsGatewayToken'>,
  logger: Logger,
): SmsGateway {
  const url = config.smsGatewayUrl;
  if (!url) {
    const sent: DevSms[] = [];
    return {
      name: 'dev',
      isAvailable: async () => true,
      async send(to, text) {
        sent.unshift({ to, text, at: new Date() });
        sent.length = Math.min(sent.length, DEV_OUTBOX_LIMIT);
      },
      outbox: (to) => sent.filter((sms) => sms.to === to),
    };
  }
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (config.smsGatewayToken) headers.authorization = `Bearer ${config.smsGatewayToken}`;
  return {
    name: 'http',
    async isAvailable() {
      try {
        const response = await fetch(url, {
          method: 'GET',
          headers,
          signal: AbortSignal.timeout(AVAILABILITY_TIMEOUT_MS),
        });
        await response.body?.cancel();
        return response.status < 500;
      } catch {
        return false;
      }
    },
    async send(to, text) {
      let response: Response;
      try {
        response = await fetch(url, {
          method: 'POST',
          headers,
          body: JSON.stringify({ to, text }),
          signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        });
      } catch (error) {
        const reason = error instanceof Error && error.name === 'TimeoutError' ? 'timed out' : 'unreachable';
        logger.warn({ reason }, 'SMS gateway failed');
        throw new SmsDeliveryError(`SMS gateway ${reason}`);
      }
      await response.body?.cancel();
      if (!response.ok) {
        logger.warn({ status: response.status }, 'SMS gateway refused a message');
        throw new SmsDeliveryError(`SMS gateway answered ${response.status}`);
      }
    },
    outbox: () => [],
  };
}
