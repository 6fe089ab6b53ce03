/**
 * GDPR rights of a signed-in user: a copy of everything Onramp holds about them (central and
 * clinic side), and erasure by anonymisation. What the law requires a clinic to keep (medical
 * appointments, the audit trail) stays, stripped of the person's identity.
 */
import type { CentralPrisma } from '../../db/database.js';
import type { RunScoped } from '../../db/request-scope.js';
import { recordAudit } from '../audit/record.js';
import { anonymise as anonymiseConsents, listConsents } from '../consents/service.js';
import type { ProvisioningService } from '../provisioning/index.js';

export interface AccountDeps {
  prisma: CentralPrisma;
  provisioning: ProvisioningService;
  /** Ends the user's live subscriptions on every instance (see auth/service.ts). */
  sessionsEnded: (userId: string) => Promise<void>;
}

export class AccountService {
  constructor(private readonly deps: AccountDeps) {}

  /**
   * @param scoped the viewer's request scope: their user, clinic and client records are read
   * through it (row-level security, decision 011). Their sessions (not clinic data) and their
   * own audit entries (some have no clinic, which the request policies would hide) are read on
   * the owner connection, by their id.
   */
  async exportData(userId: string, scoped: RunScoped): Promise<Record<string, unknown>> {
    const { prisma, provisioning } = this.deps;
    const sessions = await prisma.session.findMany({
      where: { userId },
      select: { createdAt: true, expiresAt: true, revokedAt: true, ip: true, userAgent: true },
    });
    const user = await scoped((tx) =>
      tx.user.findUniqueOrThrow({
        where: { id: userId },
        include: {
          clinic: {
            select: { id: true, name: true, country: true, subdomain: true, status: true, createdAt: true },
          },
          clientRecords: {
            // A record links to its own clinic's user only; older links across clinics are not theirs to see.
            where: { clinic: { users: { some: { id: userId } } } },
            select: {
              clinicId: true,
              kind: true,
              email: true,
              firstName: true,
              lastName: true,
              legalName: true,
              createdAt: true,
            },
          },
        },
      }),
    );
    const audit = await prisma.auditLog.findMany({
      where: { actorId: userId },
      orderBy: { id: 'asc' },
      select: { at: true, action: true, ip: true, targetType: true, targetId: true },
    });
    const consents = await listConsents(prisma, userId);
    let clinicSide: Record<string, unknown> = {};
    if (user.clinicId) {
      const clinicDb = await provisioning.clients.get(user.clinicId);
      clinicSide = {
        healthcareProvider: await clinicDb.healthcareProvider.findUnique({
          where: { userId },
          include: {
            availability: true,
            appointments: { select: { startsAt: true, endsAt: true, status: true } },
          },
        }),
      };
    }
    // Never secrets: no password hash, TOTP secret, token or code hashes.
    return {
      exportedAt: new Date().toISOString(),
      user: {
        id: user.id,
        email: user.email,
        firstName: user.firstName,
        lastName: user.lastName,
        phone: user.phone,
        role: user.role,
        emailVerifiedAt: user.emailVerifiedAt,
        twoFactorEnabled: user.totpEnabledAt !== null,
        createdAt: user.createdAt,
      },
      clinic: user.clinic,
      sessions,
      clientRecords: user.clientRecords,
      auditLog: audit,
      consents,
      clinicSide,
    };
  }

  /** Anonymises the account and ends every session. The e-mail becomes free again. */
  async deleteAccount(userId: string): Promise<void> {
    const { prisma, provisioning } = this.deps;
    const user = await prisma.user.findUniqueOrThrow({ where: { id: userId } });
    const anonymous = { firstName: 'Deleted', lastName: 'User' };
    // The user's row first, its session epoch bumped (docs/decisions/089, auth/session-ends.ts):
    // a sign-in racing the deletion waits for it and writes nothing, or wrote its session before
    // and that session is deleted with the others by the statement that follows.
    await prisma.$transaction([
      prisma.user.update({
        where: { id: userId },
        data: {
          ...anonymous,
          email: `deleted-${userId}@deleted.invalid`,
          phone: null,
          passwordHash: null,
          totpSecretEnc: null,
          totpEnabledAt: null,
          totpLastStep: null,
          emailVerifiedAt: null,
          sessionEpoch: { increment: 1 },
        },
      }),
      prisma.session.deleteMany({ where: { userId } }),
      prisma.recoveryCode.deleteMany({ where: { userId } }),
      prisma.emailVerificationToken.deleteMany({ where: { userId } }),
      prisma.loginCode.deleteMany({ where: { email: user.email ?? '' } }),
      prisma.clientRecord.updateMany({ where: { userId }, data: { userId: null } }),
      anonymiseConsents(prisma, userId),
      recordAudit(prisma, {
        action: 'user.deleted',
        actorId: userId,
        clinicId: user.clinicId,
        targetType: 'user',
        targetId: userId,
      }),
    ]);
    await this.deps.sessionsEnded(userId);
    if (user.clinicId) {
      // The provider row stays for the clinic's records (appointments refer to it), without identity.
      const clinicDb = await provisioning.clients.get(user.clinicId).catch(() => null);
      await clinicDb?.healthcareProvider.updateMany({
        where: { userId },
        data: { ...anonymous, email: null, phone: null, active: false },
      });
    }
  }
}
