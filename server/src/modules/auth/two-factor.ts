/**
 * Two-factor authentication: TOTP set up, confirmed with a first code (which also yields 10
 * single-use recovery codes, shown once and stored hashed), required after a correct password,
 * and disabled only with a current code. Secrets are encrypted at rest. Every code checked for
 * sign-in or to disable 2FA is an attempt reserved first (lockout.ts): 5 per user per window.
 * Turning it on or off changes how the account is proven, so every other session of the user
 * ends at once (docs/decisions/087), as a password set does; the one that made the change stays.
 * A sign-in racing the change keeps no session either (docs/decisions/089, session-ends.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { decryptSecret, encryptSecret } from '../../crypto.js';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { ConflictError } from '../../errors.js';
import { recordAudit } from '../audit/record.js';
import { InvalidCodeError } from '../users/errors.js';
import { TooManyAttemptsError } from './errors.js';
import { type LimitStore, Lockout } from './lockout.js';
import { endSessions } from './session-ends.js';
import { base32Encode, matchTotp, newTotpSecret, otpauthUrl } from './totp.js';

const RECOVERY_CODES = 10;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const normaliseRecovery = (code: string) => code.replace(/[\s-]/g, '').toUpperCase();

export interface TwoFactorDeps {
  config: Config;
  prisma: CentralPrisma;
  /** Where attempts are counted (shared by every instance). */
  limits: LimitStore;
  /** Tells every instance that sessions of this user ended (see auth/service.ts). */
  sessionsEnded: (userId: string) => Promise<void>;
}

export class TwoFactor {
  private readonly attempts: Lockout;

  constructor(private readonly deps: TwoFactorDeps) {
    this.attempts = new Lockout(deps.limits, 'sign_in.2fa', { threshold: 5, baseSeconds: 60 });
  }

  private aad(userId: string) {
    return `totp:${userId}`;
  }

  /** A new (not yet enabled) secret. @throws ConflictError when 2FA is already on. */
  async setup(userId: string): Promise<{ secret: string; otpauthUrl: string }> {
    const { prisma, config } = this.deps;
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    if (user.totpEnabledAt)
      throw new ConflictError('Two-factor authentication is already enabled; disable it first');
    const secret = newTotpSecret();
    await prisma.user.update({
      where: { id: userId },
      data: {
        totpSecretEnc: encryptSecret(secret, config.encryptionKey, this.aad(userId)),
        totpLastStep: null,
      },
    });
    return { secret, otpauthUrl: otpauthUrl(secret, user.email ?? user.phone ?? user.id) };
  }

  /**
   * Enables 2FA with a first valid code, and ends the user's other sessions.
   * @param keep the session that asked (its sign-in stays); null ends them all
   * @returns the recovery codes, shown this once.
   */
  async confirm(userId: string, code: string, keep: string | null): Promise<string[]> {
    const { prisma } = this.deps;
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    if (user.totpEnabledAt) throw new ConflictError('Two-factor authentication is already enabled');
    if (!(await this.acceptTotp(user, code)))
      throw new InvalidCodeError('That code is not valid; check the time on your device');
    const codes = Array.from({ length: RECOVERY_CODES }, () => {
      const raw = base32Encode(randomBytes(8)).slice(0, 10);
      return `${raw.slice(0, 5)}-${raw.slice(5)}`;
    });
    await prisma.$transaction(async (tx) => {
      await tx.recoveryCode.deleteMany({ where: { userId } });
      await tx.recoveryCode.createMany({
        data: codes.map((c) => ({ userId, codeHash: sha256(normaliseRecovery(c)) })),
      });
      await tx.user.update({ where: { id: userId }, data: { totpEnabledAt: new Date() } });
      await recordAudit(tx, {
        action: 'auth.2fa_enabled',
        actorId: userId,
        targetType: 'user',
        targetId: userId,
        data: { sessionsEnded: await endSessions(tx, userId, keep) },
      });
    });
    await this.deps.sessionsEnded(userId);
    return codes;
  }

  /**
   * Turns 2FA off, with a current code or a recovery code, and ends the user's other sessions.
   * @param keep the session that asked (its sign-in stays); null ends them all
   * @throws InvalidCodeError, TooManyAttemptsError
   */
  async disable(userId: string, code: string, keep: string | null): Promise<void> {
    const { prisma } = this.deps;
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    if (!user.totpEnabledAt) return;
    await this.check(userId, code);
    await prisma.$transaction(async (tx) => {
      await tx.recoveryCode.deleteMany({ where: { userId } });
      await tx.user.update({
        where: { id: userId },
        data: { totpEnabledAt: null, totpSecretEnc: null, totpLastStep: null },
      });
      await recordAudit(tx, {
        action: 'auth.2fa_disabled',
        actorId: userId,
        targetType: 'user',
        targetId: userId,
        data: { sessionsEnded: await endSessions(tx, userId, keep) },
      });
    });
    await this.deps.sessionsEnded(userId);
  }

  async isEnabled(userId: string): Promise<boolean> {
    const user = await this.deps.prisma.user.findUnique({
      where: { id: userId },
      select: { totpEnabledAt: true },
    });
    return Boolean(user?.totpEnabledAt);
  }

  /**
   * A second factor for `userId`, as one reserved attempt: refused once 5 attempts are spent.
   * @throws TooManyAttemptsError (this attempt was not evaluated, or was the last one and wrong),
   * InvalidCodeError
   */
  async check(userId: string, code: string): Promise<void> {
    const key = `2fa:${userId}`;
    if ((await this.attempts.reserve(key)) > 0) throw new TooManyAttemptsError();
    if (await this.verify(userId, code)) {
      await this.attempts.succeed(key);
      return;
    }
    if ((await this.attempts.retryAfter(key)) > 0) throw new TooManyAttemptsError();
    throw new InvalidCodeError('That code is not valid');
  }

  /** A TOTP code (once per time step) or an unused recovery code (spent here). */
  private async verify(userId: string, code: string): Promise<boolean> {
    const { prisma } = this.deps;
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    if (await this.acceptTotp(user, code.trim())) return true;
    return prisma.$transaction(async (tx) => {
      const spent = await tx.recoveryCode.updateMany({
        where: { userId, codeHash: sha256(normaliseRecovery(code)), usedAt: null },
        data: { usedAt: new Date() },
      });
      if (spent.count === 0) return false;
      await recordAudit(tx, { action: 'auth.recovery_code_used', actorId: userId });
      return true;
    });
  }

  private async acceptTotp(
    user: { id: string; totpSecretEnc: string | null; totpLastStep: bigint | null },
    code: string,
  ): Promise<boolean> {
    if (!user.totpSecretEnc) return false;
    const secret = decryptSecret(user.totpSecretEnc, this.deps.config.encryptionKey, this.aad(user.id));
    const step = matchTotp(secret, code, user.totpLastStep === null ? null : Number(user.totpLastStep));
    if (step === null) return false;
    // Conditional: of two concurrent uses of one code, one wins.
    const updated = await this.deps.prisma.user.updateMany({
      where: { id: user.id, OR: [{ totpLastStep: null }, { totpLastStep: { lt: BigInt(step) } }] },
      data: { totpLastStep: BigInt(step) },
    });
    return updated.count > 0;
  }
}
