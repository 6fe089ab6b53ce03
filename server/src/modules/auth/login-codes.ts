/**
 * E-mail code sign-in (the seed's client login flow, stricter): a 6-digit code valid 10
 * minutes, stored only as an HMAC under a server secret, compared in constant time, single use.
 * Five wrong tries burn it, and asking for a new code does not reset that budget (only the
 * window's end does). Sending is limited per e-mail (a growing cooldown) and per address.
 *
 * No answer here reveals whether an e-mail has an account: requestLoginCode does the same
 * work and returns the same value for any address, and limits apply to the address typed,
 * known or not.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { rateLimited } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { enqueueMail } from '../mail/service.js';
import { InvalidCodeError } from '../registration/errors.js';
import { normaliseEmail } from '../registration/validation.js';
import { TooManyAttemptsError } from './errors.js';
import { type LimitStore, Lockout } from './lockout.js';

export const CODE_TTL_SECONDS = 10 * 60;
export const MAX_FAILED_ATTEMPTS = 5;
/** The guessing budget and the send cooldown reset after this long. */
const WINDOW_MS = 60 * 60_000;
/** Cooldown before the n-th code of a window: 0, 30 s, 60 s, 120 s … capped at 15 min. */
const cooldownMs = (sends: number) => (sends === 0 ? 0 : Math.min(15 * 60_000, 30_000 * 2 ** (sends - 1)));

export interface LoginCodeDeps {
  limits: LimitStore;
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
}

export class LoginCodes {
  private readonly key: Buffer;
  /** Per address: generous, since a whole clinic may sit behind one NAT address. */
  private readonly addresses: Lockout;

  constructor(private readonly deps: LoginCodeDeps) {
    this.key = createHmac('sha256', deps.config.jwtSecret).update('onramp login codes').digest();
    this.addresses = new Lockout(deps.limits, 'login_code.address', {
      threshold: 50,
      baseSeconds: 600,
      windowSeconds: 600,
    });
  }

  private hmac(email: string, code: string): string {
    return createHmac('sha256', this.key).update(`${email}\n${code}`).digest('hex');
  }

  /**
   * Sends a code when the e-mail belongs to a user, creating the CLIENT user first when only a
   * client record has it. @returns the code's lifetime in seconds, whatever the e-mail.
   * @throws RATE_LIMITED when this e-mail or address asked too often (known or not).
   */
  async request(rawEmail: string, ip: string | null): Promise<number> {
    const { prisma } = this.deps;
    const email = normaliseEmail(rawEmail);
    const addressKey = `ip:${ip ?? 'unknown'}`;
    // LOGIN_CODE_SEND_LIMITS=off (benchmarks only; production refuses it) skips both send limits.
    const limited = this.deps.config.loginCodeSendLimits;
    const addressWait = limited ? await this.addresses.retryAfter(addressKey) : 0;
    if (addressWait > 0) throw rateLimited(addressWait);

    const code = String(randomInt(0, 1_000_000)).padStart(6, '0');
    await prisma.$transaction(async (tx) => {
      // Serialise requests for one e-mail: the cooldown is checked and spent atomically.
      await tx.$executeRaw`INSERT INTO login_codes (email, expires_at) VALUES (${email}, now()) ON CONFLICT (email) DO NOTHING`;
      const [row] = await tx.$queryRaw<
        { sends: number; last_sent_at: Date | null; window_started_at: Date }[]
      >`
        SELECT sends, last_sent_at, window_started_at FROM login_codes WHERE email = ${email} FOR UPDATE`;
      const now = Date.now();
      const fresh = !row?.last_sent_at || now - row.window_started_at.getTime() > WINDOW_MS;
      const sends = fresh ? 0 : (row?.sends ?? 0);
      const wait = !fresh && row?.last_sent_at ? row.last_sent_at.getTime() + cooldownMs(sends) - now : 0;
      if (limited && wait > 0) throw rateLimited(wait / 1000);
      // Counted per request, so spraying many addresses from one place is bounded too.
      if (limited) await this.addresses.fail(addressKey);
      const expiresAt = new Date(now + CODE_TTL_SECONDS * 1000);
      // The same write for every e-mail: an unknown one simply never receives the code.
      await tx.loginCode.update({
        where: { email },
        data: fresh
          ? {
              codeHmac: this.hmac(email, code),
              expiresAt,
              sends: 1,
              lastSentAt: new Date(now),
              failedAttempts: 0,
              windowStartedAt: new Date(now),
            }
          : {
              codeHmac: this.hmac(email, code),
              expiresAt,
              sends: { increment: 1 },
              lastSentAt: new Date(now),
            },
      });
    });
    // Everything that depends on whether the e-mail is known happens after the answer, so the
    // answer and its timing are the same for every address.
    const delivery = this.deliver(email, code, ip)
      .catch((error: unknown) => this.deps.logger.error({ err: error }, 'login code delivery failed'))
      .finally(() => this.deliveries.delete(delivery));
    this.deliveries.add(delivery);
    return CODE_TTL_SECONDS;
  }

  /**
   * Forgets e-mails whose code and budgets have all lapsed (rows exist for unknown e-mails too,
   * to keep answers identical; this keeps the table from growing with them).
   * @returns how many rows went.
   */
  async prune(): Promise<number> {
    return this.deps.prisma.$executeRaw`
      DELETE FROM login_codes
       WHERE expires_at < now() - interval '1 hour'
         AND window_started_at < now() - interval '1 hour'
         AND (last_sent_at IS NULL OR last_sent_at < now() - interval '1 hour')`;
  }

  /** Deliveries still running (tests and shutdown wait for them). */
  readonly deliveries = new Set<Promise<void>>();

  async idle(): Promise<void> {
    await Promise.all(this.deliveries);
  }

  /** Sends the code when the e-mail belongs to a user (creating a CLIENT user from a client record). */
  private async deliver(email: string, code: string, ip: string | null): Promise<void> {
    const user = await this.userFor(email);
    if (!user) return;
    await this.deps.prisma.$transaction(async (tx) => {
      await enqueueMail(
        tx,
        {
          to: email,
          kind: 'login_code',
          subject: 'Your Onramp sign-in code',
          text: `Your sign-in code is ${code}.\n\nIt works once, for ${CODE_TTL_SECONDS / 60} minutes. If you did not ask for it, ignore this e-mail.`,
        },
        this.deps.config.encryptionKey,
      );
      await tx.auditLog.create({
        data: { action: 'auth.code_requested', actorId: user.id, clinicId: user.clinicId, ip },
      });
    });
  }

  /**
   * A user for this e-mail: the existing one, or a CLIENT user created from a client record
   * (person or company) with that e-mail. Concurrent requests create one user: the unique
   * e-mail decides, the loser reads the winner's row.
   */
  async userFor(email: string): Promise<{ id: string; clinicId: string | null } | null> {
    const { prisma } = this.deps;
    const existing = await prisma.user.findUnique({ where: { email }, select: { id: true, clinicId: true } });
    if (existing) return existing;
    const record = await prisma.clientRecord.findFirst({ where: { email }, orderBy: { createdAt: 'asc' } });
    if (!record) return null;
    try {
      return await prisma.$transaction(async (tx) => {
        const user = await tx.user.create({
          data: {
            email,
            role: 'CLIENT',
            clinicId: record.clinicId,
            firstName: record.firstName ?? record.legalName ?? '',
            lastName: record.lastName ?? '',
          },
          select: { id: true, clinicId: true },
        });
        await tx.clientRecord.updateMany({ where: { email, userId: null }, data: { userId: user.id } });
        await tx.auditLog.create({
          data: { action: 'user.created_from_client_record', actorId: user.id, clinicId: record.clinicId },
        });
        return user;
      });
    } catch (error) {
      if ((error as { code?: string }).code !== 'P2002') throw error;
      return prisma.user.findUnique({ where: { email }, select: { id: true, clinicId: true } });
    }
  }

  /**
   * Consumes the code. @returns the user id.
   * @throws InvalidCodeError (wrong, expired, used or unknown: one answer for all) or
   * TooManyAttemptsError once the budget is spent.
   */
  async verify(rawEmail: string, code: string): Promise<string> {
    const { prisma } = this.deps;
    const email = normaliseEmail(rawEmail);
    const row = await prisma.loginCode.findUnique({ where: { email } });
    const now = Date.now();
    if (!row) throw new InvalidCodeError('This code is invalid or has expired');
    const inWindow = now - row.windowStartedAt.getTime() <= WINDOW_MS;
    if (inWindow && row.failedAttempts >= MAX_FAILED_ATTEMPTS) throw new TooManyAttemptsError();

    const expected = row.codeHmac ? Buffer.from(row.codeHmac, 'hex') : Buffer.alloc(32);
    const given = Buffer.from(this.hmac(email, /^\d{6}$/.test(code) ? code : 'invalid'), 'hex');
    const matches =
      timingSafeEqual(expected, given) && row.codeHmac !== null && row.expiresAt.getTime() > now;
    if (!matches) {
      // Counted atomically: concurrent wrong guesses cannot exceed the budget.
      const [counted] = await prisma.$queryRaw<{ failed_attempts: number }[]>`
        UPDATE login_codes
           SET failed_attempts = CASE WHEN window_started_at < now() - interval '1 hour' THEN 1 ELSE failed_attempts + 1 END,
               window_started_at = CASE WHEN window_started_at < now() - interval '1 hour' THEN now() ELSE window_started_at END,
               code_hmac = CASE WHEN failed_attempts + 1 >= ${MAX_FAILED_ATTEMPTS} THEN NULL ELSE code_hmac END
         WHERE email = ${email}
     RETURNING failed_attempts`;
      if ((counted?.failed_attempts ?? 0) >= MAX_FAILED_ATTEMPTS) throw new TooManyAttemptsError();
      throw new InvalidCodeError('This code is invalid or has expired');
    }
    // Single use: of two concurrent uses of one code, only one clears it.
    const used = await prisma.loginCode.updateMany({
      where: { email, codeHmac: row.codeHmac },
      data: { codeHmac: null, failedAttempts: 0 },
    });
    const user = await prisma.user.findUnique({ where: { email }, select: { id: true } });
    if (used.count === 0 || !user) throw new InvalidCodeError('This code is invalid or has expired');
    // The code proves the mailbox is theirs.
    await prisma.user.updateMany({
      where: { id: user.id, emailVerifiedAt: null },
      data: { emailVerifiedAt: new Date() },
    });
    return user.id;
  }
}
