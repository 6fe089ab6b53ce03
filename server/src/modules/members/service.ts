/**
 * Atomic invitations (seed "atomic activation"): an invited member and their activation code
 * exist only if the SMS gateway or the mail server accepted the message. The gateway's
 * availability is checked first; the message is sent last, inside the transaction that creates
 * the member, so a refusal, a 500 or a timeout rolls everything back.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { ConflictError } from '../../errors.js';
import { type CounterStore, RateLimit, releaseAll, takeAll } from '../../limits/counters.js';
import type { Logger } from '../../logger.js';
import { recordAudit } from '../audit/record.js';
import { EmailNotVerifiedError, TooManyAttemptsError } from '../auth/errors.js';
import { hashPassword } from '../auth/passwords.js';
import { endSessions } from '../auth/session-ends.js';
import { type Acceptance, recordAcceptances } from '../consents/service.js';
import { MailDeliveryError, type MailTransport, sendMailNow } from '../mail/service.js';
import { SmsDeliveryError, type SmsGateway } from '../sms/gateway.js';
import { EmailTakenError, InvalidCodeError } from '../users/errors.js';
import { containsLinkOrPhone } from '../users/validation.js';
import { DeliveryFailedError } from './errors.js';

const ACTIVATION_TTL_MS = 48 * 60 * 60_000;
export const MAX_ACTIVATION_ATTEMPTS = 5;

export interface InviteInput {
  clinicId: string;
  firstName: string;
  lastName: string;
  role: 'PRACTITIONER' | 'STAFF' | 'CLINIC_ADMIN';
  channel: 'SMS' | 'EMAIL';
  phone: string | null;
  email: string | null;
}

export interface MembersDeps {
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
  sms: SmsGateway;
  mail: MailTransport;
  /** Ends the user's live subscriptions on every instance (see auth/service.ts). */
  sessionsEnded: (userId: string) => Promise<void>;
  /** Where the invitation limits are counted (shared by every instance). */
  counters: CounterStore;
}

/** Who invites: a super-admin, or an admin of the clinic (the auth scope checked that). */
export interface Inviter {
  userId: string | null;
  role: string | null;
}

/**
 * The activation message. It starts with Onramp's own words and carries the clinic's name only
 * at its end, and only when the name holds no link or phone number (names registered before
 * that rule may): the text reaches numbers and addresses the caller typed (docs/decisions/018).
 */
export function invitationText(clinicName: string, code: string): string {
  const team = containsLinkOrPhone(clinicName) ? 'a clinic team' : `the team of ${clinicName}`;
  return `Onramp: your activation code is ${code} (valid 48 hours). You were invited to join ${team}.`;
}

export class MembersService {
  private readonly key: Buffer;
  /** Every invitation sends an SMS or an e-mail to whoever the caller names: bounded. */
  private readonly perClinic: RateLimit;
  private readonly overall: RateLimit;

  constructor(private readonly deps: MembersDeps) {
    this.key = createHmac('sha256', deps.config.jwtSecret).update('onramp activation codes').digest();
    const { clinic, total } = deps.config.invitationLimits;
    this.perClinic = new RateLimit(deps.counters, 'invitation.clinic', clinic);
    this.overall = new RateLimit(deps.counters, 'invitation.total', total);
  }

  private hmac(userId: string, code: string): string {
    return createHmac('sha256', this.key).update(`${userId}\n${code}`).digest('hex');
  }

  /**
   * @returns the new member's id.
   * @throws EmailNotVerifiedError when a clinic admin inviting has not proven their address.
   * @throws RateLimitedError past the clinic's or the platform's budget, counted
   * before anything is sent.
   * @throws DeliveryFailedError (nothing persisted), EmailTakenError, ConflictError (phone in use)
   */
  async invite(input: InviteInput, inviter: Inviter): Promise<string> {
    await this.checkInviter(inviter);
    const limits: [RateLimit, string][] = [
      [this.perClinic, input.clinicId],
      [this.overall, 'all'],
    ];
    await takeAll(limits);
    try {
      return await this.deliverInvitation(input, inviter.userId);
    } catch (error) {
      // Nothing was sent: the attempt does not count (the gateway's fault, not the caller's).
      if (error instanceof DeliveryFailedError) {
        await releaseAll(limits);
      }
      throw error;
    }
  }

  /**
   * Clinic admins invite once their own contact is proven: a verified e-mail, or, for admins
   * invited by SMS (no e-mail), the phone their activation proved.
   */
  private async checkInviter(inviter: Inviter): Promise<void> {
    if (inviter.role === 'SUPER_ADMIN') return;
    const user = inviter.userId
      ? await this.deps.prisma.user.findUnique({
          where: { id: inviter.userId },
          select: { email: true, emailVerifiedAt: true, passwordHash: true },
        })
      : null;
    const proven =
      user && (user.emailVerifiedAt !== null || (user.email === null && user.passwordHash !== null));
    if (!proven) throw new EmailNotVerifiedError();
  }

  private async deliverInvitation(input: InviteInput, actorId: string | null): Promise<string> {
    const { prisma, sms, mail, config } = this.deps;
    if (input.channel === 'SMS' && !(await sms.isAvailable())) throw new DeliveryFailedError('SMS');
    const clinic = await prisma.clinic.findUniqueOrThrow({
      where: { id: input.clinicId },
      select: { name: true },
    });
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    try {
      return await prisma.$transaction(
        async (tx) => {
          const user = await tx.user.create({
            data: {
              email: input.email,
              phone: input.phone,
              firstName: input.firstName,
              lastName: input.lastName,
              role: input.role,
              clinicId: input.clinicId,
            },
          });
          await tx.activationCode.create({
            data: {
              userId: user.id,
              codeHmac: this.hmac(user.id, code),
              expiresAt: new Date(Date.now() + ACTIVATION_TTL_MS),
            },
          });
          await recordAudit(tx, {
            action: 'member.invited',
            actorId,
            clinicId: input.clinicId,
            targetType: 'user',
            targetId: user.id,
            data: { role: input.role, channel: input.channel },
          });
          // Last: only an accepted message lets the transaction commit.
          const text = invitationText(clinic.name, code);
          if (input.channel === 'SMS') await sms.send(input.phone as string, text);
          else {
            await sendMailNow(
              tx,
              mail,
              {
                to: input.email as string,
                kind: 'invitation',
                subject: 'Your Onramp activation code',
                text,
              },
              config.encryptionKey,
            );
          }
          return user.id;
        },
        { timeout: 20_000 },
      );
    } catch (error) {
      if (error instanceof SmsDeliveryError) throw new DeliveryFailedError('SMS');
      if (error instanceof MailDeliveryError) throw new DeliveryFailedError('EMAIL');
      if ((error as { code?: string }).code === 'P2002') {
        // Which unique contact collided: the phone (a conflict) or the e-mail (taken).
        const phoneTaken =
          input.phone &&
          (await prisma.user.findUnique({ where: { phone: input.phone }, select: { id: true } }));
        if (phoneTaken) throw new ConflictError('A user with this phone number already exists');
        throw new EmailTakenError();
      }
      throw error;
    }
  }

  /**
   * Checks the activation code and sets the password. @returns the member's id.
   * @throws InvalidCodeError (wrong, expired or unknown: one answer), TooManyAttemptsError
   */
  async activate(
    contact: { email: string | null; phone: string | null },
    code: string,
    password: string,
    consent: { acceptances: Acceptance[]; ip: string | null },
  ): Promise<string> {
    const { prisma } = this.deps;
    const user = await prisma.user.findFirst({
      where: contact.email ? { email: contact.email } : { phone: contact.phone },
      include: { activationCode: true },
    });
    if (!user?.activationCode) throw new InvalidCodeError('This code is invalid or has expired');
    // The attempt is counted before the code is compared, in one statement: of N parallel
    // guesses at most MAX_ACTIVATION_ATTEMPTS are compared (docs/decisions/016).
    const [row] = await prisma.$queryRaw<{ code_hmac: string; expires_at: Date; failed_attempts: number }[]>`
      UPDATE activation_codes SET failed_attempts = failed_attempts + 1
       WHERE user_id = ${user.id}::uuid AND failed_attempts < ${MAX_ACTIVATION_ATTEMPTS}
   RETURNING code_hmac, expires_at, failed_attempts`;
    if (!row) throw new TooManyAttemptsError();
    const given = Buffer.from(this.hmac(user.id, /^\d{6}$/.test(code) ? code : 'invalid'), 'hex');
    const ok =
      timingSafeEqual(Buffer.from(row.code_hmac, 'hex'), given) && row.expires_at.getTime() > Date.now();
    if (!ok) {
      if (row.failed_attempts >= MAX_ACTIVATION_ATTEMPTS) throw new TooManyAttemptsError();
      throw new InvalidCodeError('This code is invalid or has expired');
    }
    const passwordHash = await hashPassword(password);
    await prisma.$transaction(async (tx) => {
      // Single use: of two concurrent activations, one deletes the code.
      const used = await tx.activationCode.deleteMany({
        where: { userId: user.id, codeHmac: row.code_hmac },
      });
      if (used.count === 0) throw new InvalidCodeError('This code is invalid or has expired');
      await tx.user.update({
        where: { id: user.id },
        // The code reached them at this address or number: it is theirs.
        data: { passwordHash, ...(contact.email ? { emailVerifiedAt: new Date() } : {}) },
      });
      // A password set ends every session started before it (docs/decisions/016), and those of
      // sign-ins racing it (docs/decisions/089).
      await endSessions(tx, user.id);
      await recordAcceptances(tx, user.id, consent.acceptances, consent.ip);
      await recordAudit(tx, { action: 'member.activated', actorId: user.id, clinicId: user.clinicId });
    });
    await this.deps.sessionsEnded(user.id);
    return user.id;
  }
}
