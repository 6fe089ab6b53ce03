/**
 * One-time sign-in links for the first sign-in in development (docs/decisions/020): at each
 * start the banner prints a link for ONRAMP_ADMIN_EMAIL on standard output (never through the
 * logger). A link is a 256-bit token stored as sha256, works once, for 15 minutes; a new start
 * replaces the previous one. Production never creates one, and refuses any it finds.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { InvalidCodeError } from '../users/errors.js';

export const SIGN_IN_LINK_TTL_MS = 15 * 60_000;
/** Spent and expired links are deleted when a new one is issued, once this old. */
const KEEP_SPENT_MS = 24 * 60 * 60_000;

/** Where the console's sign-in page takes a link (the fragment never reaches a server or a Referer). */
export const signInLinkUrl = (consoleUrl: string, token: string) =>
  `${consoleUrl.replace(/\/+$/, '')}/sign-in#link=${token}`;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

export interface SignInLinksDeps {
  config: Pick<Config, 'env' | 'adminEmail'>;
  prisma: CentralPrisma;
}

export interface IssuedSignInLink {
  /** Shown once (the banner); only its hash is stored. */
  token: string;
  email: string;
  expiresAt: Date;
}

export class SignInLinks {
  constructor(private readonly deps: SignInLinksDeps) {}

  /** Whether this environment issues sign-in links (development and test, never production). */
  get enabled(): boolean {
    return this.deps.config.env !== 'production';
  }

  /**
   * A new link for the super-admin of ONRAMP_ADMIN_EMAIL; any earlier unused link of theirs stops
   * working. @throws Error in production.
   */
  async issueForAdmin(): Promise<IssuedSignInLink> {
    if (!this.enabled) throw new Error('sign-in links are never issued in production');
    const { prisma, config } = this.deps;
    const token = randomBytes(32).toString('base64url');
    const now = new Date();
    const expiresAt = new Date(now.getTime() + SIGN_IN_LINK_TTL_MS);
    await prisma.$transaction(async (tx) => {
      const admin = await tx.user.findUniqueOrThrow({
        where: { email: config.adminEmail },
        select: { id: true, role: true },
      });
      if (admin.role !== 'SUPER_ADMIN') throw new Error(`${config.adminEmail} is not a super-admin`);
      await tx.signInLink.updateMany({ where: { userId: admin.id, usedAt: null }, data: { usedAt: now } });
      await tx.signInLink.deleteMany({
        where: {
          OR: [{ usedAt: { lt: new Date(now.getTime() - KEEP_SPENT_MS) } }, { expiresAt: { lt: now } }],
        },
      });
      await tx.signInLink.create({
        data: { userId: admin.id, tokenHash: sha256(token), expiresAt, createdAt: now },
      });
    });
    return { token, email: config.adminEmail, expiresAt };
  }

  /**
   * Spends a link: of concurrent uses of one token exactly one succeeds (conditional update).
   * @returns the user it signs in.
   * @throws InvalidCodeError when the link is unknown, used, replaced or expired, and always in
   * production (a row left by a development run against the same database must not work there).
   */
  async consume(token: string): Promise<string> {
    const invalid = new InvalidCodeError(
      'This sign-in link is invalid, used or expired. Restart the server for a new one, or sign in with an e-mail code.',
    );
    if (!this.enabled) throw invalid;
    const [spent] = await this.deps.prisma.signInLink.updateManyAndReturn({
      where: { tokenHash: sha256(token), usedAt: null, expiresAt: { gt: new Date() } },
      data: { usedAt: new Date() },
      select: { userId: true },
    });
    if (!spent) throw invalid;
    return spent.userId;
  }
}
