/** Delivers one outbox row (outbox.ts) through the transport: the `send_email` job, and `after_commit`'s send. */

import { decryptSecret } from '../../crypto.js';
import { queryRows } from '../../db/raw.js';
import { Prisma, type PrismaClient } from '../../generated/central/client.js';
import type { Logger } from '../../logger.js';
import { MAIL_AAD, MAIL_MAX_ATTEMPTS } from './outbox.js';
import { deliveryErrorMessage, MailDeliveryError, recipientDomain } from './redaction.js';
import type { MailTransport } from './transport.js';

export interface DeliverMailDeps {
  /** ENCRYPTION_KEY, to read and write the stored bodies. */
  key: Buffer;
  prisma: Pick<PrismaClient, 'mailOutbox' | '$queryRaw'>;
  transport: MailTransport;
  logger: Logger;
}

/**
 * Sends one outbox row: the `send_email` job's handler, and the `after_commit` policy's send
 * (after-commit.ts); the one way an outbox row is sent. Safe to run twice: a row already SENT (or
 * FAILED) is left alone, and of two concurrent runs only the one that claims the attempt sends.
 * A failure is recorded and rethrown (a MailDeliveryError) so graphile-worker retries with its
 * backoff; the attempt that reaches {@link MAIL_MAX_ATTEMPTS} marks the row FAILED and returns,
 * so the job is not kept as failed (the row is the record). Two statements besides the send,
 * straight through the pool (db/raw.ts).
 */
export async function deliverMail(deps: DeliverMailDeps, outboxId: string): Promise<void> {
  const { prisma, transport } = deps;
  // Reads and claims the attempt in one statement: a concurrent claim of the same row waits for
  // this one's row lock, then finds `attempts` changed (PostgreSQL re-checks the updated row) and
  // claims nothing.
  const [row] = await queryRows<ClaimedRow>(
    prisma,
    Prisma.sql`
    WITH r AS (SELECT id, attempts FROM mail_outbox WHERE id = ${outboxId}::uuid AND status = 'PENDING')
    UPDATE mail_outbox m SET attempts = m.attempts + 1
      FROM r WHERE m.id = r.id AND m.status = 'PENDING' AND m.attempts = r.attempts
    RETURNING m.id::text AS id, m.to_address AS "toAddress", m.subject, m.text_body AS "textBody",
              m.html_body AS "htmlBody", m.kind, m.attempts`,
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
    // Still PENDING only: a run that took over a send that never ended may have settled it.
    await queryRows(
      prisma,
      Prisma.sql`
      UPDATE mail_outbox SET last_error = ${lastError},
             status = CASE WHEN ${failed}::boolean THEN 'FAILED'::"MailStatus" ELSE status END
       WHERE id = ${outboxId}::uuid AND status = 'PENDING'`,
    );
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
    UPDATE mail_outbox SET status = 'SENT', transport = ${transport.name}, sent_at = now(), last_error = NULL
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
