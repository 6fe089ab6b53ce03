/**
 * Where mail leaves the process: SMTP (nodemailer) when SMTP_URL is set, else the built-in dev
 * mailbox. A transport only sends; the outbox (outbox.ts) decides when.
 */
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { Config } from '../../env.js';
import type { Logger } from '../../logger.js';
import { MailDeliveryError, recipientDomain, summariseError, urlCredentials } from './redaction.js';

/** SMTP connection, greeting and socket timeouts, so a stuck server cannot hold a worker slot. */
export const SMTP_TIMEOUT_MS = 10_000;

/** What a transport is handed for one outbox row. */
export interface TransportMessage {
  /** The outbox id; also the stable Message-ID, so a duplicate after a crash can be spotted. */
  id: string;
  to: string;
  subject: string;
  text: string;
  html?: string | undefined;
}

export interface MailTransport {
  /** Stored on each sent row: `dev` rows make up the dev mailbox. */
  readonly name: 'smtp' | 'dev';
  /** Resolves once the server accepted the message; rejects otherwise. */
  send(message: TransportMessage): Promise<void>;
  close(): void;
}

/**
 * SMTP when `config.smtpUrl` is set; otherwise the built-in dev mailbox, where nothing leaves
 * the process and the outbox row itself is the mailbox (production refuses to start without
 * SMTP_URL, so it never gets here).
 */
export function createMailTransport(
  config: Pick<Config, 'smtpUrl' | 'baseDomain'>,
  logger: Logger,
): MailTransport {
  const from = `Onramp <no-reply@${config.baseDomain}>`;
  if (!config.smtpUrl) {
    return {
      name: 'dev',
      async send(message) {
        logger.debug({ outboxId: message.id, toDomain: recipientDomain(message.to) }, 'dev mailbox');
      },
      close() {},
    };
  }
  const options: SMTPTransport.Options = {
    url: config.smtpUrl,
    connectionTimeout: SMTP_TIMEOUT_MS,
    greetingTimeout: SMTP_TIMEOUT_MS,
    socketTimeout: SMTP_TIMEOUT_MS,
    // nodemailer's own logger would print envelopes and, at debug, whole messages.
    logger: false,
    debug: false,
  };
  const transporter = nodemailer.createTransport(options);
  const secrets = urlCredentials(config.smtpUrl);
  return {
    name: 'smtp',
    async send(message) {
      try {
        await transporter.sendMail({
          from,
          to: message.to,
          subject: message.subject,
          text: message.text,
          ...(message.html !== undefined ? { html: message.html } : {}),
          messageId: `<${message.id}@${config.baseDomain}>`,
        });
      } catch (error) {
        throw new MailDeliveryError(summariseError(error, secrets));
      }
    },
    close() {
      transporter.close();
    },
  };
}
