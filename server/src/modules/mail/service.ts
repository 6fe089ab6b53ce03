/**
 * Outgoing e-mail through a transactional outbox: a message is a `mail_outbox` row plus a
 * `send_email` job, written in the caller's transaction, so it is sent exactly when the caller's
 * change commits (at least once: a crash between SMTP acceptance and marking the row SENT sends
 * it again, with the same Message-ID). The only module file other modules import.
 */
import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { Config } from '../../env.js';
import { Prisma, type PrismaClient } from '../../generated/central/client.js';
import type { MailStatus } from '../../generated/central/enums.js';
import type { Logger } from '../../logger.js';
import { decryptSecret, encryptSecret } from '../provisioning/secrets.js';

/** Attempts before a message is marked FAILED; also the job's `maxAttempts`. */
export const MAIL_MAX_ATTEMPTS = 8;
/** Associated data of encrypted bodies: a ciphertext from another table will not decrypt here. */
const MAIL_AAD = 'mail_outbox';

/** SMTP connection, greeting and socket timeouts, so a stuck server cannot hold a worker slot. */
const SMTP_TIMEOUT_MS = 10_000;

/** Longest `lastError` kept: enough for an SMTP reply line, never a message body. */
const MAX_ERROR_LENGTH = 300;

/** How many messages `devMailbox` returns at most. */
const DEV_MAILBOX_LIMIT = 50;

export interface OutgoingMail {
  /** One address; lists are refused so that user input can never add recipients. */
  to: string;
  subject: string;
  text: string;
  html?: string;
  /** What the message is for, e.g. `verify_email`; logged and stored, never the content. */
  kind: string;
}

/** A Prisma client or interactive transaction: only what enqueueing needs. */
export type MailDb = Pick<Prisma.TransactionClient, '$queryRaw'>;

/** After a failed immediate send ({@link sendThenRecordMail}), when its job tries again. */
export const MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS = 5_000;

export interface EnqueueOptions {
  /** When the `send_email` job is due. @default now */
  jobRunAt?: Date;
  /** The caller already made the first attempt, which failed with this error (counted in `attempts`). */
  firstAttemptFailed?: string;
  /**
   * A data-modifying statement run as part of the same statement (so atomic with the message
   * without a transaction), e.g. the audit entry of what the message announces.
   */
  alongside?: Prisma.Sql;
}

/** The outbox row of a message: normalised recipient, a safe subject, encrypted bodies. */
function outboxRow(mail: OutgoingMail, key: Buffer) {
  return {
    toAddress: normaliseAddress(mail.to),
    // A header value: line breaks would at best be folded, at worst read as new headers.
    subject: mail.subject.replace(/[\r\n]+/g, ' ').trim(),
    // Bodies carry links and codes: encrypted at rest (ENCRYPTION_KEY), like every secret.
    textBody: encryptSecret(mail.text, key, MAIL_AAD),
    htmlBody: mail.html === undefined ? null : encryptSecret(mail.html, key, MAIL_AAD),
    kind: mail.kind,
  };
}

/**
 * Stores the message and its `send_email` job in the caller's transaction, in one statement:
 * when the transaction rolls back, neither exists.
 * @throws Error when `to` is not a single e-mail address (a caller bug: validate input first).
 */
export async function enqueueMail(
  tx: MailDb,
  mail: OutgoingMail,
  key: Buffer,
  options: EnqueueOptions = {},
): Promise<{ id: string }> {
  const row = outboxRow(mail, key);
  const alongside = options.alongside ? Prisma.sql`, alongside AS (${options.alongside})` : Prisma.empty;
  // The job's payload is TaskPayloads['send_email'] (see jobs/index.ts, addJob).
  const [queued] = await tx.$queryRaw<{ id: string }[]>`
    WITH m AS (
      INSERT INTO mail_outbox (to_address, subject, text_body, html_body, kind, attempts, last_error)
      VALUES (${row.toAddress}, ${row.subject}, ${row.textBody}, ${row.htmlBody}::text, ${row.kind},
              ${options.firstAttemptFailed === undefined ? 0 : 1}::int, ${options.firstAttemptFailed ?? null}::text)
      RETURNING id)${alongside}
    SELECT m.id::text AS id,
           graphile_worker.add_job(
             'send_email',
             json_build_object('outboxId', m.id::text),
             run_at => ${options.jobRunAt ?? null}::timestamptz,
             max_attempts => ${MAIL_MAX_ATTEMPTS}::int,
             job_key => 'mail:' || m.id::text
           ) IS NOT NULL AS queued
      FROM m`;
  if (!queued) throw new Error('enqueueMail: the outbox insert returned no row');
  return { id: queued.id };
}

/**
 * For mail a user is waiting for (sign-in codes): sent at once from this process, then recorded
 * in the outbox as SENT together with `alongside`, in one statement and without a job. When the
 * send fails, the message goes to the outbox as PENDING with its job, which retries it like any
 * mail. A crash between the send and its record leaves a sent message unrecorded; a crash before
 * the send loses it, and the user asks again (a code lives 10 minutes: a durable queue in front
 * of every send would cost each request two more statements and the code's latency).
 * @returns the outbox id; never throws for a failed send (the job retries it).
 */
export async function sendThenRecordMail(
  deps: DeliverMailDeps,
  mail: OutgoingMail,
  options: Pick<EnqueueOptions, 'alongside'> = {},
): Promise<{ id: string }> {
  const { prisma, transport, key } = deps;
  const id = randomUUID();
  const row = outboxRow(mail, key);
  const logger = deps.logger.child({ outboxId: id, kind: mail.kind, toDomain: recipientDomain(mail.to) });
  try {
    await transport.send({ id, to: row.toAddress, subject: row.subject, text: mail.text, html: mail.html });
  } catch (error) {
    const lastError = error instanceof MailDeliveryError ? error.message : summariseError(error, []);
    logger.warn({ lastError }, 'immediate mail send failed; its job will retry');
    return enqueueMail(prisma, mail, key, {
      ...options,
      firstAttemptFailed: lastError,
      jobRunAt: new Date(Date.now() + MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS),
    });
  }
  const alongside = options.alongside ? Prisma.sql`, alongside AS (${options.alongside})` : Prisma.empty;
  await prisma.$queryRaw`
    WITH m AS (
      INSERT INTO mail_outbox (id, to_address, subject, text_body, html_body, kind, attempts, status, transport, sent_at)
      VALUES (${id}::uuid, ${row.toAddress}, ${row.subject}, ${row.textBody}, ${row.htmlBody}::text, ${row.kind},
              1, 'SENT', ${transport.name}, now())
      RETURNING id)${alongside}
    SELECT id::text AS id FROM m`;
  logger.info({ attempts: 1, transport: transport.name }, 'mail sent');
  return { id };
}

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

export interface DeliverMailDeps {
  /** ENCRYPTION_KEY, to read and write the stored bodies. */
  key: Buffer;
  prisma: Pick<PrismaClient, 'mailOutbox' | '$queryRaw'>;
  transport: MailTransport;
  logger: Logger;
}

/**
 * The `send_email` job handler. Safe to run twice: a row already SENT (or FAILED) is left alone,
 * and of two concurrent runs only the one that claims the attempt sends. A failure is recorded
 * and rethrown so graphile-worker retries with its backoff; the attempt that reaches
 * {@link MAIL_MAX_ATTEMPTS} marks the row FAILED and returns, so the job is not kept as failed
 * (the row is the record).
 */
export async function deliverMail(deps: DeliverMailDeps, outboxId: string): Promise<void> {
  const { prisma, transport } = deps;
  const row = await prisma.mailOutbox.findUnique({ where: { id: outboxId } });
  if (!row) {
    deps.logger.warn({ outboxId }, 'mail outbox row not found; nothing to send');
    return;
  }
  const logger = deps.logger.child({ outboxId, kind: row.kind, toDomain: recipientDomain(row.toAddress) });
  if (row.status !== 'PENDING') {
    logger.debug({ status: row.status }, 'mail already settled; not sent again');
    return;
  }

  // Claims this attempt: a concurrent run of the same row finds `attempts` changed and stops.
  const claimed = await prisma.mailOutbox.updateMany({
    where: { id: outboxId, status: 'PENDING', attempts: row.attempts },
    data: { attempts: { increment: 1 } },
  });
  if (claimed.count === 0) {
    logger.debug('mail attempt claimed by another run');
    return;
  }
  const attempts = row.attempts + 1;

  try {
    await transport.send({
      id: row.id,
      to: row.toAddress,
      subject: row.subject,
      text: decryptSecret(row.textBody, deps.key, MAIL_AAD),
      html: row.htmlBody === null ? undefined : decryptSecret(row.htmlBody, deps.key, MAIL_AAD),
    });
  } catch (error) {
    const lastError = error instanceof MailDeliveryError ? error.message : summariseError(error, []);
    const failed = attempts >= MAIL_MAX_ATTEMPTS;
    await prisma.mailOutbox.update({
      where: { id: outboxId },
      data: { lastError, ...(failed ? { status: 'FAILED' as const } : {}) },
    });
    if (failed) {
      logger.error({ attempts, lastError }, 'mail delivery failed for good');
      return;
    }
    logger.warn({ attempts, lastError }, 'mail delivery failed; will retry');
    throw error instanceof MailDeliveryError ? error : new MailDeliveryError(lastError);
  }

  await prisma.mailOutbox.update({
    where: { id: outboxId },
    data: { status: 'SENT', transport: transport.name, sentAt: new Date(), lastError: null },
  });
  logger.info({ attempts, transport: transport.name }, 'mail sent');
}

/**
 * A failed send, carrying only a short redacted summary (stored as `lastError`): the SMTP
 * client's own error may hold the connection's options, credentials included.
 */
export class MailDeliveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MailDeliveryError';
  }
}

export interface DevMailMessage {
  id: string;
  to: string;
  subject: string;
  text: string;
  html: string | null;
  kind: string;
  status: MailStatus;
  createdAt: Date;
  sentAt: Date | null;
}

/** Messages the dev transport accepted for `to`, newest first (development and test only). */
export async function devMailbox(
  prisma: Pick<PrismaClient, 'mailOutbox'>,
  to: string,
  key: Buffer,
): Promise<DevMailMessage[]> {
  const rows = await prisma.mailOutbox.findMany({
    where: { toAddress: to.trim().toLowerCase(), transport: 'dev' },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: DEV_MAILBOX_LIMIT,
  });
  return rows.map((row) => ({
    id: row.id,
    to: row.toAddress,
    subject: row.subject,
    text: decryptSecret(row.textBody, key, MAIL_AAD),
    html: row.htmlBody === null ? null : decryptSecret(row.htmlBody, key, MAIL_AAD),
    kind: row.kind,
    status: row.status,
    createdAt: row.createdAt,
    sentAt: row.sentAt,
  }));
}

/** One bare address (no display name, no list), trimmed and lower-cased. */
function normaliseAddress(to: string): string {
  const address = to.trim().toLowerCase();
  // Commas, angle brackets and the like would let nodemailer read a list or a display name.
  if (!/^[^\s@,;:<>()[\]"\\]+@[^\s@,;:<>()[\]"\\]+\.[^\s@,;:<>()[\]"\\]+$/.test(address)) {
    throw new Error('enqueueMail: `to` must be a single e-mail address');
  }
  return address;
}

/** Logs name the recipient's domain only. */
function recipientDomain(address: string): string {
  return `***@${address.slice(address.lastIndexOf('@') + 1)}`;
}

/**
 * A short summary of a send failure, safe to store and log: nodemailer's code, the SMTP reply
 * code and a truncated message, without credentials or mailbox names.
 */
function summariseError(error: unknown, secrets: string[]): string {
  const { code, responseCode } = (error ?? {}) as { code?: unknown; responseCode?: unknown };
  let message = error instanceof Error ? error.message : String(error);
  for (const secret of secrets) message = message.split(secret).join('***');
  message = message
    .replace(/\b(smtps?:\/\/)[^@\s/]*@/gi, '$1***@')
    .replace(/[^\s<>"'@,;:]+@([^\s<>"',;:]+)/g, '***@$1')
    .replace(/\s+/g, ' ')
    .trim();
  const prefix = [
    typeof code === 'string' ? code : null,
    typeof responseCode === 'number' ? responseCode : null,
  ]
    .filter((part) => part !== null)
    .join(' ');
  const summary = prefix ? `${prefix}: ${message}` : message;
  return summary.length > MAX_ERROR_LENGTH ? `${summary.slice(0, MAX_ERROR_LENGTH - 1)}…` : summary;
}

/** The user name and password of an SMTP URL, raw and decoded. */
function urlCredentials(url: string): string[] {
  const parsed = new URL(url);
  const parts = [parsed.username, parsed.password].flatMap((part) => {
    try {
      return [part, decodeURIComponent(part)];
    } catch {
      return [part];
    }
  });
  // Longest first, so a password containing the user name is removed whole.
  return [...new Set(parts.filter((part) => part.length > 0))].sort((a, b) => b.length - a.length);
}

/**
 * Sends a message now, inside the caller's transaction, and records it as SENT: for messages
 * whose acceptance decides whether the transaction commits (atomic invitations).
 * @throws MailDeliveryError when the transport refuses it (the caller's transaction rolls back).
 */
export async function sendMailNow(
  tx: Pick<Prisma.TransactionClient, 'mailOutbox'>,
  transport: MailTransport,
  mail: OutgoingMail,
  key: Buffer,
): Promise<void> {
  const row = await tx.mailOutbox.create({
    data: { ...outboxRow(mail, key), attempts: 1 },
    select: { id: true, toAddress: true, subject: true },
  });
  try {
    await transport.send({
      id: row.id,
      to: row.toAddress,
      subject: row.subject,
      text: mail.text,
      html: mail.html,
    });
  } catch (error) {
    throw error instanceof MailDeliveryError ? error : new MailDeliveryError(summariseError(error, []));
  }
  await tx.mailOutbox.update({
    where: { id: row.id },
    data: { status: 'SENT', transport: transport.name, sentAt: new Date() },
  });
}
