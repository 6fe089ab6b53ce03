/**
 * E-mail verification of an account: the link (a 256-bit token, stored hashed, single use, 24 h),
 * spending it, and sending a new one. Registration issues the first link in its commit
 * (registration/service.ts); everything after that is this module's.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { RequestScope } from '../../db/request-scope.js';
import type { Config } from '../../env.js';
import { Prisma } from '../../generated/central/client.js';
import type { Logger } from '../../logger.js';
import { recordAudit } from '../audit/record.js';
import { type CommittedMail, type MailDb, stageMail } from '../mail/service.js';
import { InvalidCodeError } from './errors.js';
import { normaliseEmail } from './validation.js';

const VERIFICATION_TTL_MS = 24 * 60 * 60_000;
/** Verification resends running at once at most (they run after the answer). */
const MAX_PENDING_RESENDS = 100;
const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Creates a verification link for `user` and stages its mail, in the caller's transaction (a
 * Prisma client or transaction, or a step's pg transaction): the link exists exactly when the
 * mail will go out. One statement: the link's row rides along the outbox's (stageMail). The
 * mail's policy is `after_commit` (mail/after-commit.ts, docs/decisions/075): once the
 * transaction commits, the caller passes the returned id to `CommittedMail.send`; a caller that
 * does not (or crashes first) leaves it to the sweep's job after the grace.
 */
export async function issueEmailVerification(
  tx: MailDb,
  config: Pick<Config, 'publicUrl' | 'encryptionKey'>,
  user: { id: string; email: string; firstName: string },
  clinicName: string,
): Promise<{ outboxId: string }> {
  const token = randomBytes(32).toString('base64url');
  const link = `${config.publicUrl}/verify-email?token=${token}`;
  const { id } = await stageMail(
    tx,
    {
      to: user.email,
      kind: 'email_verification',
      subject: `Confirm your e-mail for ${clinicName}`,
      text: [
        `Hello ${user.firstName},`,
        `Your clinic "${clinicName}" is ready on Onramp. Confirm your e-mail address to sign in:`,
        link,
        'The link works once and expires in 24 hours.',
      ].join('\n\n'),
    },
    config.encryptionKey,
    {
      alongside: Prisma.sql`
        INSERT INTO email_verification_tokens (user_id, token_hash, expires_at)
        VALUES (${user.id}::uuid, ${hashToken(token)}::text,
          ${new Date(Date.now() + VERIFICATION_TTL_MS)}::timestamptz)`,
    },
  );
  return { outboxId: id };
}

export interface EmailVerificationDeps {
  config: Pick<Config, 'publicUrl' | 'encryptionKey'>;
  logger: Logger;
  prisma: CentralPrisma;
  /** Sends the staged link once its transaction has committed. */
  committedMail: Pick<CommittedMail, 'send'>;
}

export class EmailVerificationService {
  /** Resends still running (stop() and tests wait for them). */
  private readonly resends = new Set<Promise<void>>();

  constructor(private readonly deps: EmailVerificationDeps) {}

  /**
   * Marks the e-mail verified. Single use, 24 h. @returns who verified (for reading them back
   * as themselves). @throws InvalidCodeError with its reason
   */
  async verify(token: string): Promise<RequestScope & { userId: string }> {
    const { prisma } = this.deps;
    return prisma.$transaction(async (tx) => {
      // The conditional update makes two concurrent uses of one token succeed once.
      const used = await tx.emailVerificationToken.updateManyAndReturn({
        where: { tokenHash: hashToken(token), usedAt: null, expiresAt: { gt: new Date() } },
        data: { usedAt: new Date() },
        select: { userId: true },
      });
      const userId = used[0]?.userId;
      if (!userId) throw await whyNot(tx, token);
      const user = await tx.user.update({
        where: { id: userId },
        data: { emailVerifiedAt: new Date() },
        select: { role: true, clinicId: true },
      });
      await recordAudit(tx, {
        action: 'user.email_verified',
        actorId: userId,
        targetType: 'user',
        targetId: userId,
      });
      return { userId, role: user.role, clinicId: user.clinicId };
    });
  }

  /**
   * Sends a new link to an unverified user of a READY clinic, after the caller has its answer:
   * the answer and its timing are the same whether the e-mail is unknown, verified or not (the
   * same rule as sign-in codes, auth/login-codes.ts). At most one mail per minute goes out per
   * address; past {@link MAX_PENDING_RESENDS} resends still running, more are dropped (the
   * answer does not change, and an honest user simply asks again).
   */
  resend(rawEmail: string): void {
    if (this.resends.size >= MAX_PENDING_RESENDS) {
      this.deps.logger.warn('verification resends saturated; one dropped');
      return;
    }
    const work = this.resendNow(normaliseEmail(rawEmail))
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'verification resend failed'))
      .finally(() => this.resends.delete(work));
    this.resends.add(work);
  }

  async idle(): Promise<void> {
    await Promise.all(this.resends);
  }

  private async resendNow(email: string): Promise<void> {
    const { prisma } = this.deps;
    const user = await prisma.user.findUnique({ where: { email }, include: { clinic: true } });
    if (!user || user.emailVerifiedAt || !user.clinic || user.clinic.status !== 'READY') return;
    const recent = await prisma.mailOutbox.count({
      where: {
        toAddress: email,
        kind: 'email_verification',
        createdAt: { gt: new Date(Date.now() - 60_000) },
      },
    });
    if (recent > 0) return;
    const clinicName = user.clinic.name;
    const { outboxId } = await prisma.$transaction(async (tx) => {
      // Only the newest link works.
      await tx.emailVerificationToken.updateMany({
        where: { userId: user.id, usedAt: null },
        data: { usedAt: new Date() },
      });
      return issueEmailVerification(
        tx,
        this.deps.config,
        { id: user.id, email, firstName: user.firstName },
        clinicName,
      );
    });
    this.deps.committedMail.send(outboxId);
  }
}

/** Why `token` cannot verify anything: unknown, already used (or replaced), or expired. */
async function whyNot(tx: Prisma.TransactionClient, token: string): Promise<InvalidCodeError> {
  const row = await tx.emailVerificationToken.findUnique({
    where: { tokenHash: hashToken(token) },
    select: { usedAt: true, expiresAt: true },
  });
  if (!row) {
    return new InvalidCodeError(
      'This link is not valid. Check that the whole link was copied, or ask for a new one.',
      'UNKNOWN',
    );
  }
  if (row.usedAt) {
    return new InvalidCodeError(
      'This link was already used, or replaced by a newer one. If your e-mail is confirmed, sign in; otherwise ask for a new link.',
      'USED',
    );
  }
  return new InvalidCodeError('This link has expired. Ask for a new one.', 'EXPIRED');
}
