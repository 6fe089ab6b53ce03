/**
 * The `after_commit` policy's second half (docs/decisions/075): the process whose transaction
 * staged a message (`stageMail`, outbox.ts) sends it once that transaction has committed, through the
 * same {@link deliverMail} as the `send_email` job; the job is only the safety net. Why not a job
 * for every message: graphile-worker's `add_job` NOTIFYs `jobs:insert` whatever the job's `run_at`
 * (its add_jobs, migration 000018), and every instance's worker answers that with a `get_job`,
 * 1.1–2.8 ms of CPU each (decision 071).
 *
 * Who sends a staged row, and when:
 * - this process, right after the commit ({@link CommittedMail.send}), claiming the row for the
 *   grace ({@link MAIL_SEND_GRACE_MS}) as every send does (delivery.ts): no other run sends it
 *   meanwhile;
 * - its `send_email` job, added when that send is refused (retried with the job's backoff, the
 *   attempts counted on the row, as for any mail), or by {@link CommittedMail.requeueUnsent} for a
 *   row still PENDING without a job after the grace: a crash between the commit and the record of
 *   the send, a send that never ended, a failure to add the retry job.
 * So at least once, as before: a crash after the send and before its record sends the message
 * again after the grace (its Message-ID is the outbox id, so a duplicate can be recognised).
 */
import { queryRows } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';
import { addJobSql, jobKeyExistsSql } from '../../jobs/index.js';
import { type DeliverMailDeps, deliverMail, MAIL_SEND_GRACE_MS } from './delivery.js';
import { MAIL_MAX_ATTEMPTS, MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS, mailJobKeySql } from './outbox.js';
import { MailDeliveryError } from './redaction.js';

/** Sends in flight at most; past it a staged row goes to its job at once (one NOTIFY). */
const MAX_SENDING = 100;
/** Rows the sweep hands to jobs per pass at most; the next pass takes the rest. */
const REQUEUE_BATCH = 100;

export class CommittedMail {
  private readonly sending = new Set<Promise<void>>();

  private readonly graceMs: number;

  constructor(private readonly deps: DeliverMailDeps) {
    this.graceMs = deps.graceMs ?? MAIL_SEND_GRACE_MS;
  }

  /**
   * Sends the staged row `outboxId` in the background; call it once the transaction that staged
   * it has committed. Never throws: whatever fails is left to the job (see the file's header).
   */
  send(outboxId: string): void {
    const work = (this.sending.size >= MAX_SENDING ? this.toJob(outboxId, 0) : this.sendNow(outboxId))
      .catch((error: unknown) =>
        this.deps.logger.error(
          { err: error, outboxId },
          'mail not sent after commit; the sweep will queue it',
        ),
      )
      .finally(() => this.sending.delete(work));
    this.sending.add(work);
  }

  /** Resolves once the sends started so far have ended (stop() and tests wait for them). */
  async idle(): Promise<void> {
    while (this.sending.size > 0) await Promise.all(this.sending);
  }

  /**
   * The safety net, run by every instance's reconcile pass: a `send_email` job for each row still
   * PENDING, without a job, older than the grace and not claimed (or its claim run out). One
   * statement; a job that exists in any state
   * (pending, running, failed for good) is left as it is (`unsafe_dedupe`: that job reads the row
   * when it runs, so it does what a second one would), so two instances sweeping at once add one.
   * @returns how many jobs were added.
   */
  async requeueUnsent(): Promise<number> {
    const job = addJobSql(
      'send_email',
      { outboxId: Prisma.sql`m.id::text` },
      {
        maxAttempts: MAIL_MAX_ATTEMPTS,
        jobKey: mailJobKeySql(Prisma.sql`m.id`),
        jobKeyMode: 'unsafe_dedupe',
      },
    );
    // A CTE with a volatile call is evaluated in full (never inlined), whatever reads it.
    const [row] = await queryRows<{ n: number }>(
      this.deps.prisma,
      Prisma.sql`
      WITH queued AS (
        SELECT ${job} IS NOT NULL AS queued
          FROM mail_outbox m
         WHERE m.status = 'PENDING'
           AND m.created_at < now() - ${this.graceMs}::int * interval '1 millisecond'
           AND (m.claimed_until IS NULL OR m.claimed_until <= now())
           AND NOT ${jobKeyExistsSql(mailJobKeySql(Prisma.sql`m.id`))}
         ORDER BY m.created_at
         LIMIT ${REQUEUE_BATCH})
      SELECT count(*)::int AS n FROM queued`,
    );
    const queued = row?.n ?? 0;
    if (queued > 0) this.deps.logger.warn({ queued }, 'unsent mail past its grace handed to jobs');
    return queued;
  }

  private async sendNow(outboxId: string): Promise<void> {
    try {
      await deliverMail(this.deps, outboxId);
    } catch (error) {
      if (!(error instanceof MailDeliveryError)) throw error;
      // Refused (and recorded by deliverMail): its job retries it shortly, like any mail.
      await this.toJob(outboxId, MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS);
    }
  }

  /** The row's `send_email` job, due in `delayMs`; none added when one exists (see requeueUnsent). */
  private async toJob(outboxId: string, delayMs: number): Promise<void> {
    const job = addJobSql(
      'send_email',
      { outboxId: Prisma.sql`${outboxId}::text` },
      {
        runAt: new Date(Date.now() + delayMs),
        maxAttempts: MAIL_MAX_ATTEMPTS,
        jobKey: mailJobKeySql(Prisma.sql`${outboxId}`),
        jobKeyMode: 'unsafe_dedupe',
      },
    );
    await queryRows(this.deps.prisma, Prisma.sql`SELECT ${job} IS NOT NULL AS queued`);
  }
}
