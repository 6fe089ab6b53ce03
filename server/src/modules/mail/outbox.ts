/**
 * The `mail_outbox` table and the four ways a message goes out, each a named
 * {@link MailSendPolicy}:
 * - `outbox` ({@link enqueueMail}): a row plus a `send_email` job in the caller's transaction,
 *   sent by the job (delivery.ts) exactly when the caller's change commits, at least once.
 * - `after_commit` ({@link stageMail}, then after-commit.ts): the row alone in the caller's
 *   transaction, sent by this process once it commits; a row still unsent after the grace gets
 *   its job from the reconcile pass's sweep. At least once, like `outbox`, without waking a job
 *   worker in every instance for each message (docs/decisions/075).
 * - `immediate` ({@link sendThenRecordMail}): sent at once, then recorded; falls back to the
 *   outbox when the send fails. For mail a user is waiting for (sign-in codes).
 * - `atomic` ({@link sendMailNow}): sent inside the caller's transaction, whose commit depends on
 *   the transport accepting it (invitations).
 * Bodies are encrypted at rest; only the subject, recipient and kind are readable.
 */
import { randomUUID } from 'node:crypto';
import { decryptSecret, encryptSecret } from '../../crypto.js';
import { queryRows, type RawDb } from '../../db/raw.js';
import { Prisma, type PrismaClient } from '../../generated/central/client.js';
import type { MailStatus } from '../../generated/central/enums.js';
import { addJobSql } from '../../jobs/index.js';
import type { DeliverMailDeps } from './delivery.js';
import { deliveryErrorMessage, MailDeliveryError, recipientDomain } from './redaction.js';
import type { MailTransport } from './transport.js';

/** How a message is sent (see this file's header). */
export type MailSendPolicy = 'outbox' | 'after_commit' | 'immediate' | 'atomic';

/** Attempts before a message is marked FAILED; also the job's `maxAttempts`. */
export const MAIL_MAX_ATTEMPTS = 8;
/** Associated data of encrypted bodies: a ciphertext from another table will not decrypt here. */
export const MAIL_AAD = 'mail_outbox';

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

/** A Prisma client or interactive transaction, or a step's pg transaction (db/raw.ts). */
export type MailDb = RawDb;

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
 * The `outbox` policy: stores the message and its `send_email` job in the caller's transaction,
 * in one statement: when the transaction rolls back, neither exists.
 * @throws Error when `to` is not a single e-mail address (a caller bug: validate input first).
 */
export async function enqueueMail(
  tx: MailDb,
  mail: OutgoingMail,
  key: Buffer,
  options: EnqueueOptions = {},
): Promise<{ id: string }> {
  const job = addJobSql(
    'send_email',
    { outboxId: Prisma.sql`m.id::text` },
    {
      runAt: options.jobRunAt,
      maxAttempts: MAIL_MAX_ATTEMPTS,
      jobKey: mailJobKeySql(Prisma.sql`m.id`),
    },
  );
  return insertOutboxRow(tx, mail, key, options, Prisma.sql`${job} IS NOT NULL`);
}

/**
 * The `after_commit` policy's first half: stores the message in the caller's transaction,
 * without a job (so without the `jobs:insert` NOTIFY that wakes a worker in every instance).
 * Once the transaction commits, the caller hands the id to `CommittedMail.send` (after-commit.ts);
 * should it never do so (a crash), the sweep gives the row a job after the grace.
 * @throws Error when `to` is not a single e-mail address (a caller bug: validate input first).
 */
export async function stageMail(
  tx: MailDb,
  mail: OutgoingMail,
  key: Buffer,
  options: Pick<EnqueueOptions, 'alongside'> = {},
): Promise<{ id: string }> {
  return insertOutboxRow(tx, mail, key, options, Prisma.sql`false`);
}

/** The `send_email` job key of an outbox row (at most one job per message), as SQL. */
export function mailJobKeySql(id: Prisma.Sql): Prisma.Sql {
  return Prisma.sql`'mail:' || ${id}::text`;
}

/** One statement: the outbox row, what goes alongside, and `job` evaluated on it (`m`). */
async function insertOutboxRow(
  tx: MailDb,
  mail: OutgoingMail,
  key: Buffer,
  options: Omit<EnqueueOptions, 'jobRunAt'>,
  job: Prisma.Sql,
): Promise<{ id: string }> {
  const row = outboxRow(mail, key);
  const alongside = options.alongside ? Prisma.sql`, alongside AS (${options.alongside})` : Prisma.empty;
  // One text for every caller: through the pool, a Prisma transaction or a step's pg transaction.
  const [queued] = await queryRows<{ id: string }>(
    tx,
    Prisma.sql`
      WITH m AS (
        INSERT INTO mail_outbox (to_address, subject, text_body, html_body, kind, attempts, last_error)
        VALUES (${row.toAddress}::text, ${row.subject}::text, ${row.textBody}::text, ${row.htmlBody}::text,
                ${row.kind}::text, ${options.firstAttemptFailed === undefined ? 0 : 1}::int,
                ${options.firstAttemptFailed ?? null}::text)
        RETURNING id)${alongside}
      SELECT m.id::text AS id, ${job} AS queued
        FROM m`,
  );
  if (!queued) throw new Error('enqueueMail: the outbox insert returned no row');
  return { id: queued.id };
}

/**
 * The `immediate` policy, for mail a user is waiting for (sign-in codes): sent at once from this
 * process, then recorded in the outbox as SENT together with `alongside`, in one statement and
 * without a job. When the send fails, the message goes to the outbox as PENDING with its job,
 * which retries it like any mail. A crash between the send and its record leaves a sent message
 * unrecorded; a crash before the send loses it, and the user asks again (a code lives 10
 * minutes: a durable queue in front of every send would cost each request two more statements
 * and the code's latency).
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
    const lastError = deliveryErrorMessage(error);
    logger.warn({ lastError }, 'immediate mail send failed; its job will retry');
    return enqueueMail(prisma, mail, key, {
      ...options,
      firstAttemptFailed: lastError,
      jobRunAt: new Date(Date.now() + MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS),
    });
  }
  const alongside = options.alongside ? Prisma.sql`, alongside AS (${options.alongside})` : Prisma.empty;
  // Through the pool, without Prisma's engine (db/raw.ts): one statement of every code sign-in.
  await queryRows(
    prisma,
    Prisma.sql`
    WITH m AS (
      INSERT INTO mail_outbox (id, to_address, subject, text_body, html_body, kind, attempts, status, transport, sent_at)
      VALUES (${id}::uuid, ${row.toAddress}, ${row.subject}, ${row.textBody}, ${row.htmlBody}::text, ${row.kind},
              1, 'SENT', ${transport.name}, now())
      RETURNING id)${alongside}
    SELECT id::text AS id FROM m`,
  );
  logger.info({ attempts: 1, transport: transport.name }, 'mail sent');
  return { id };
}

/**
 * The `atomic` policy: sends a message now, inside the caller's transaction, and records it as
 * SENT: for messages whose acceptance decides whether the transaction commits (invitations).
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
    throw error instanceof MailDeliveryError ? error : new MailDeliveryError(deliveryErrorMessage(error));
  }
  await tx.mailOutbox.update({
    where: { id: row.id },
    data: { status: 'SENT', transport: transport.name, sentAt: new Date() },
  });
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
