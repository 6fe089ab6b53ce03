/** The `send_email` job: delivers one outbox row (outbox.ts) through the transport. */

import { decryptSecret } from '../../crypto.js';
import type { PrismaClient } from '../../generated/central/client.js';
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
    const lastError = deliveryErrorMessage(error);
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
