/**
 * Applications of the onboarding service and their master keys: registered by a super-admin,
 * shown once, stored as sha256, rotated or revoked (the old key stops working at once). Each
 * change is audited in its own transaction, without any key material. A revoked application is
 * cut off with its tenants: its onboardings' API credentials are revoked with its key, and a new
 * key does not bring them back (docs/decisions/087).
 */
import type { CentralPrisma } from '../../db/database.js';
import { NotFoundError } from '../../errors.js';
import type { Application, Prisma } from '../../generated/central/client.js';
import { addJob } from '../../jobs/index.js';
import { recordAudit } from '../audit/record.js';
import { masterKeyId, newMasterKey, sameHash, sha256 } from './keys.js';
import { applicationNameSchema, parseInput } from './validation.js';

/** Who called with a valid `X-Master-Key`. */
export interface ApplicationPrincipal {
  applicationId: string;
  name: string;
}

export interface Actor {
  userId: string | null;
  ip: string | null;
}

export interface IssuedApplicationKey {
  application: Application;
  /** Plaintext, shown to the caller once; only its sha256 is kept. */
  masterKey: string;
}

/** At most one pending release job per application (a later one replaces it). */
export function releaseJobKey(applicationId: string): string {
  return `release_onboarding_names:${applicationId}`;
}

/** A digest no key has: compared against when the key id is unknown, so both paths cost the same. */
const NO_KEY_HASH = sha256('no such key');

export function validateApplicationName(raw: unknown, path: string[]): string {
  return parseInput(applicationNameSchema, raw, () => path);
}

export class ApplicationService {
  constructor(private readonly prisma: CentralPrisma) {}

  async register(nameInput: string, actor: Actor): Promise<IssuedApplicationKey> {
    const name = validateApplicationName(nameInput, ['name']);
    const key = newMasterKey();
    const application = await this.prisma.$transaction(async (tx) => {
      const created = await tx.application.create({
        data: { name, createdBy: actor.userId, keys: { create: { keyId: key.keyId, keyHash: key.hash } } },
      });
      await recordAudit(tx, {
        action: 'application.registered',
        actorId: actor.userId,
        targetType: 'application',
        targetId: created.id,
        data: { name },
        ip: actor.ip,
      });
      return created;
    });
    return { application, masterKey: key.plaintext };
  }

  /** A new master key; the previous one stops working immediately. @throws NotFoundError */
  async rotate(applicationId: string, actor: Actor): Promise<IssuedApplicationKey> {
    const key = newMasterKey();
    const application = await this.replaceKeys(
      applicationId,
      actor,
      'application.key_rotated',
      async (tx) => {
        await tx.applicationKey.create({ data: { applicationId, keyId: key.keyId, keyHash: key.hash } });
        return {};
      },
    );
    return { application, masterKey: key.plaintext };
  }

  /**
   * Revokes the application's master key and the API credentials of all its onboardings (what
   * `DELETE /api/v1/onboarding/{uuid}/api-key` does to one), deletes its webhook endpoints, and
   * queues the release of its pending onboardings' DNS records and certificates
   * (OnboardingService.releaseUnkeyed). rotate issues a new master key; the application then issues new credentials per onboarding
   * and registers its endpoints again. @throws NotFoundError
   */
  revoke(applicationId: string, actor: Actor): Promise<Application> {
    return this.replaceKeys(applicationId, actor, 'application.key_revoked', async (tx) => {
      // After the keys' revocation in this transaction: a credential write that held a live key
      // (api-credentials.ts, `whileKeyed`) has committed by now and is cleared here; any later
      // one finds no live key and writes nothing.
      const cleared = await tx.onboarding.updateMany({
        where: { applicationId, apiKeyId: { not: null } },
        data: { apiKeyId: null, apiKeyHash: null, apiSecretEncrypted: null },
      });
      // Its webhook endpoints too, registered perhaps with a leaked key: nothing more is sent
      // to them (pending deliveries end failed at their next attempt). An endpoint registration
      // holds the key as the credential writes do (webhooks/service.ts), so none slips past.
      const endpoints = await tx.webhookEndpoint.updateMany({
        where: { applicationId, deletedAt: null },
        data: { deletedAt: new Date() },
      });
      // Its pending onboardings' DNS records and certificates: nothing can use them until a new
      // key, which provisions fresh ones. Released by a job queued with the revocation, since the
      // providers are outside this transaction (decision 096).
      await addJob(
        tx,
        'release_onboarding_names',
        { applicationId },
        { jobKey: releaseJobKey(applicationId) },
      );
      return { revokedApiCredentials: cleared.count, deletedWebhookEndpoints: endpoints.count };
    });
  }

  /**
   * Revokes every live key, runs `then` (issue the next one, or not; what it returns joins the
   * audit entry's data) and audits, in one transaction.
   */
  private replaceKeys(
    applicationId: string,
    actor: Actor,
    action: 'application.key_rotated' | 'application.key_revoked',
    then: (tx: Prisma.TransactionClient) => Promise<Record<string, number>>,
  ): Promise<Application> {
    return this.prisma.$transaction(async (tx) => {
      const found = await tx.application.findUnique({ where: { id: applicationId } });
      if (!found) throw new NotFoundError('application');
      const revoked = await tx.applicationKey.updateMany({
        where: { applicationId, revokedAt: null },
        data: { revokedAt: new Date() },
      });
      const done = await then(tx);
      await recordAudit(tx, {
        action,
        actorId: actor.userId,
        targetType: 'application',
        targetId: applicationId,
        data: { revokedKeys: revoked.count, ...done },
        ip: actor.ip,
      });
      return tx.application.update({ where: { id: applicationId }, data: { updatedAt: new Date() } });
    });
  }

  /** The application of a presented master key, or null (missing, malformed, unknown, revoked). */
  async authenticate(presented: string | string[] | undefined | null): Promise<ApplicationPrincipal | null> {
    if (typeof presented !== 'string' || presented.length > 200) return null;
    const keyId = masterKeyId(presented);
    const row = keyId
      ? await this.prisma.applicationKey.findUnique({
          where: { keyId },
          select: {
            id: true,
            keyHash: true,
            revokedAt: true,
            lastUsedAt: true,
            application: { select: { id: true, name: true } },
          },
        })
      : null;
    const matches = sameHash(sha256(presented.trim()), row?.keyHash ?? NO_KEY_HASH);
    if (!row || !matches || row.revokedAt) return null;
    if (!row.lastUsedAt || row.lastUsedAt.getTime() < Date.now() - 60_000) {
      // At most one write a minute per key: enough for operators, cheap on hot paths.
      void this.prisma.applicationKey
        .update({ where: { id: row.id }, data: { lastUsedAt: new Date() } })
        .catch(() => {});
    }
    return { applicationId: row.application.id, name: row.application.name };
  }

  list(): Promise<Application[]> {
    return this.prisma.application.findMany({ orderBy: { createdAt: 'asc' } });
  }
}
