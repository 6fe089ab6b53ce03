/** Delivers one outbox row (outbox.ts) through the transport: the `send_email` job, and `after_commit`'s send. */

import { decryptSecret } from '../../crypto.js';
import { queryRows } from '../../db/raw.js';
import { Prisma, type PrismaClient } from '../../generated/central/client.js';
import type { Logger } from '../../logger.js';
import { MAIL_AAD, MAIL_MAX_ATTEMPTS } from './outbox.js';
import { deliveryErrorMessage, MailDeliveryError, recipientDomain } from './redaction.js';
import { type MailTransport, SMTP_TIMEOUT_MS } from './transport.js';

/**
 * How long an attempt holds its row (`claimed_until`), and how long a staged row is left to the
 * process that committed it (after-commit.ts). Longer than one SMTP send can take when the server
 * answers nothing (connection, greeting and socket timeouts of {@link SMTP_TIMEOUT_MS} each,
 * transport.ts), so no second run sends a message while a first is still sending it, unless that
 * send outlives every timeout.
 */
export const MAIL_SEND_GRACE_MS = 6 * SMTP_TIMEOUT_MS;

export interface DeliverMailDeps {
  /** ENCRYPTION_KEY, to read and write the stored bodies. */
  key: Buffer;
  prisma: Pick<PrismaClient, 'mailOutbox' | '$queryRaw'>;
  transport: MailTransport;
  logger: Logger;
  /** See {@link MAIL_SEND_GRACE_MS} (tests make it short). @default MAIL_SEND_GRACE_MS */
  graceMs?: number;
}

/**
 * Sends one outbox row: the `send_email` job's handler, and the `after_commit` policy's send
 * (after-commit.ts); the one way an outbox row is sent. Safe to run twice: a row already SENT (or
 * FAILED) is left alone, and a row another run is sending (claimed for the grace) too. A failure
 * is recorded, the claim released, and rethrown (a MailDeliveryError) so graphile-worker retries
 * with its backoff; the attempt that reaches {@link MAIL_MAX_ATTEMPTS} marks the row FAILED and
 * returns, so the job is not kept as failed (the row is the record). A send that failed after
 * its claim ran out and another run took the row over returns too: the row is that run's. Two
 * statements besides the send, straight through the pool (db/raw.ts).
 */
export async function deliverMail(deps: DeliverMailDeps, outboxId: string): Promise<void> {
  const { prisma, transport } = deps;
  // Reads and claims the attempt in one statement. A concurrent claim waits for this one's row
  // lock, then finds the row claimed (PostgreSQL re-checks the updated row), as does a later one
  // until the claim runs out or is released.
  const [row] = await queryRows<ClaimedRow>(
    prisma,
    Prisma.sql`
    UPDATE mail_outbox
       SET attempts = attempts + 1,
           claimed_until = now() + ${deps.graceMs ?? MAIL_SEND_GRACE_MS}::int * interval '1 millisecond'
     WHERE id = ${outboxId}::uuid AND status = 'PENDING' AND (claimed_until IS NULL OR claimed_until <= now())
    RETURNING id::text AS id, to_address AS "toAddress", subject, text_body AS "textBody",
              html_body AS "htmlBody", kind, attempts`,
  );
  if (!row) {
    deps.logger.debug({ outboxId }, 'mail not pending (sent, failed, unknown) or claimed by another run');
    return;
  }
  const logger = deps.logger.child({ outboxId, kind: row.kind, toDomain: recipientDomain(row.toAddress) });
  const { attempts } = row;

  try {
    await transport.send({
      id: row.id,
      to: row.toAddress,
      subject: row.subject,
      text: decryptSecret(row.textBody, deps.key, MAIL_AAD),
      html: row.htmlBody === null ? undefined : decryptSecret(row.htmlBody, deps.key, MAIL_AAD),
    });
  } catch (error) {
    const lastError = deliveryErrorMessage(error);
    const failed = attempts >= MAIL_MAX_ATTEMPTS;
    // Only while the row is still this attempt's: a run that took it over once the claim ran out
    // (a send slower than every timeout) has counted its own attempt, and may have settled it.
    const recorded = await queryRows(
      prisma,
      Prisma.sql`
      UPDATE mail_outbox SET last_error = ${lastError}, claimed_until = NULL,
             status = CASE WHEN ${failed}::boolean THEN 'FAILED'::"MailStatus" ELSE status END
       WHERE id = ${outboxId}::uuid AND status = 'PENDING' AND attempts = ${attempts}::int
      RETURNING id`,
    );
    if (recorded.length === 0) {
      logger.warn({ attempts, lastError }, 'mail send failed after another run took it over');
      return;
    }
    if (failed) {
      logger.error({ attempts, lastError }, 'mail delivery failed for good');
      return;
    }
    logger.warn({ attempts, lastError }, 'mail delivery failed; will retry');
    throw error instanceof MailDeliveryError ? error : new MailDeliveryError(lastError);
  }

  await queryRows(
    prisma,
    Prisma.sql`
    UPDATE mail_outbox
       SET status = 'SENT', transport = ${transport.name}, sent_at = now(), last_error = NULL, claimed_until = NULL
     WHERE id = ${outboxId}::uuid`,
  );
  logger.info({ attempts, transport: transport.name }, 'mail sent');
}

interface ClaimedRow {
  id: string;
  toAddress: string;
  subject: string;
  textBody: string;
  htmlBody: string | null;
  kind: string;
  attempts: number;
}
