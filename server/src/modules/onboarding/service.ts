/**
 * The onboarding service of the integration guide: start (an onboarding and its subdomain),
 * provision (DNS, certificate, optional API credentials), status and complete. REST
 * (routes.ts) and GraphQL (schema.ts) both call this class; each onboarding belongs to the
 * application whose key created it, and is invisible to every other one (NOT_FOUND, never
 * FORBIDDEN: another application must not learn that a uuid exists).
 *
 * Provisioning is a run of the engine's ONBOARDING plan (provisioning/engine/plans/onboard.ts:
 * recorded run and steps, progress events, fault injection) with steps `dns`, `ssl`, `commit`,
 * but unlike a clinic it never rolls back: DNS records and a certificate are harmless to keep,
 * and a retry of `provision` resumes (README, "Onboarding service"). Each step records its success on the onboarding row
 * and is skipped when it is already done. They are released only when nothing can use them: a
 * pending onboarding of an application whose key was revoked (decision 096).
 */
import { randomUUID } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import { NotFoundError } from '../../errors.js';
import { type Onboarding, Prisma } from '../../generated/central/client.js';
import { addJob } from '../../jobs/index.js';
import type { Logger } from '../../logger.js';
import { auditSql, recordAudit } from '../audit/record.js';
import type { ProvisioningService, Transaction } from '../provisioning/index.js';
import { preferredSubdomain, reserveSubdomain } from '../subdomains/allocator.js';
import type { WebhookService } from '../webhooks/service.js';
import { ApiCredentialService, holdsLiveKey, issueApiCredentials, whileKeyed } from './api-credentials.js';
import { type ApplicationPrincipal, releaseJobKey } from './applications.js';
import {
  OnboardingConflictError,
  OnboardingProvisioningFailedError,
  RevokedDuringProvisionError,
} from './errors.js';
import type { OnboardingLimits, RateState } from './limits.js';
import type { CompleteInput, StartInput } from './validation.js';

/** A provisioning call holds the onboarding this long; a crashed one frees it after. */
const PROVISION_LEASE_MS = 5 * 60_000;

/** A release holds the onboarding's row while the providers answer (Cloudflare, ACME: HTTP). */
const RELEASE_TIMEOUT_MS = 60_000;

/** What a released onboarding records: no step done, so the next provision does them again. */
const UNPROVISIONED = {
  dnsConfigured: false,
  sslConfigured: false,
  infrastructureStatus: 'pending',
} as const;

export type OnboardingStatus = 'pending' | 'activated' | 'completed';

export interface OnboardingDeps {
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
  limits: OnboardingLimits;
  /**
   * Runs the onboarding's plan (its DNS, certificate, commit steps are the engine's), and
   * releases a name nothing can use any more (the dns module's removal, the certificates
   * module's revocation).
   */
  provisioning: Pick<ProvisioningService, 'plans' | 'run' | 'releaseSubdomain'>;
  /** Queues onboarding events for the application's webhook endpoints, in our transactions. */
  webhooks: WebhookService;
}

export interface CallMeta {
  ip: string | null;
}

export interface ProvisionResult {
  onboarding: Onboarding;
  /** Plaintext, only on the call that generated them (never stored, never replayed). */
  apiKey: string | null;
  apiSecret: string | null;
  /** The onboarding was already provisioned: nothing was done or counted. */
  isIdempotent: boolean;
  rate: RateState | null;
}

interface ProvisionState {
  onboardingId: string;
  applicationId: string;
  /** The organisation's name, or its full domain: how the run is named in the console. */
  label: string;
  fqdn: string;
  generateApiKey: boolean;
  ip: string | null;
  apiKey: string | null;
  apiSecret: string | null;
}

export class OnboardingService {
  /** The tenants' own API credentials: signed requests, rotation, revocation. */
  readonly credentials: ApiCredentialService;

  constructor(private readonly deps: OnboardingDeps) {
    this.credentials = new ApiCredentialService(deps.prisma, deps.config.encryptionKey);
  }

  get limits(): OnboardingLimits {
    return this.deps.limits;
  }

  fullDomain(onboarding: Pick<Onboarding, 'subdomain'>): string {
    return `${onboarding.subdomain}.${this.deps.config.baseDomain}`;
  }

  url(onboarding: Pick<Onboarding, 'subdomain'>): string {
    return `https://${this.fullDomain(onboarding)}`;
  }

  /** A new onboarding (each call creates one; README, "Onboarding service"). @throws RateLimitExceeded */
  async start(
    app: ApplicationPrincipal,
    input: StartInput,
    meta: CallMeta,
  ): Promise<{ onboarding: Onboarding; rate: RateState }> {
    const rate = await this.deps.limits.take('start', app.applicationId);
    const { prisma, logger } = this.deps;
    const base = preferredSubdomain(input.organizationName);
    const onboarding = await prisma.$transaction(async (tx) => {
      const id = randomUUID();
      // The reservation first (its foreign key is checked at commit): the name decides the row.
      const subdomain = await reserveSubdomain(tx, base, { onboardingId: id });
      const created = await tx.onboarding.create({
        data: {
          id,
          applicationId: app.applicationId,
          email: input.email,
          // The guide: "organization_name (optionnel, généré si absent)".
          organizationName: input.organizationName ?? readableName(subdomain),
          subdomain,
        },
      });
      await recordAudit(tx, {
        action: 'onboarding.started',
        targetType: 'onboarding',
        targetId: id,
        data: { applicationId: app.applicationId, subdomain },
        ip: meta.ip,
      });
      return created;
    });
    logger.info({ onboardingId: onboarding.id, applicationId: app.applicationId }, 'onboarding started');
    return { onboarding, rate };
  }

  /** @throws NotFoundError when the uuid does not exist for this application. */
  async find(app: Pick<ApplicationPrincipal, 'applicationId'>, uuid: string): Promise<Onboarding> {
    const onboarding = await this.deps.prisma.onboarding.findFirst({
      where: { id: uuid, applicationId: app.applicationId },
    });
    if (!onboarding) throw new NotFoundError('onboarding');
    return onboarding;
  }

  /** @throws RateLimitExceeded, NotFoundError */
  async status(
    app: Pick<ApplicationPrincipal, 'applicationId'>,
    uuid: string,
  ): Promise<{ onboarding: Onboarding; rate: RateState }> {
    const rate = await this.deps.limits.take('status', app.applicationId);
    return { onboarding: await this.find(app, uuid), rate };
  }

  /**
   * DNS, certificate, optional API credentials, then `activated`. A repeat on a provisioned
   * onboarding changes nothing and costs no rate-limit budget (`isIdempotent`, no secrets).
   * @throws NotFoundError (also when the application's key is revoked before this activates it),
   *   RateLimitExceeded, OnboardingConflictError (another call is provisioning it),
   *   OnboardingProvisioningFailedError (what was done is kept; call again to resume)
   */
  async provision(
    app: ApplicationPrincipal,
    uuid: string,
    generateApiKey: boolean,
    meta: CallMeta,
  ): Promise<ProvisionResult> {
    const { prisma, logger } = this.deps;
    const existing = await this.find(app, uuid);
    const replay = (onboarding: Onboarding): ProvisionResult => ({
      onboarding,
      apiKey: null,
      apiSecret: null,
      isIdempotent: true,
      rate: null,
    });
    if (existing.status !== 'pending') return replay(existing);
    const rate = await this.deps.limits.take('provision', uuid);
    // Claimed only while the application holds a live key (whileKeyed, decision 091): a
    // provision authenticated just before its key's revocation does nothing after it.
    const claimedAt = new Date();
    const claimed = await prisma.$executeRaw`
      UPDATE onboardings
      SET provisioning_until = ${new Date(claimedAt.getTime() + PROVISION_LEASE_MS)},
        provisioning_attempts = provisioning_attempts + 1, updated_at = ${claimedAt}
      WHERE id = ${uuid}::uuid AND status = 'pending'
        AND (provisioning_until IS NULL OR provisioning_until < ${claimedAt})
        AND ${whileKeyed(app.applicationId)}`;
    if (claimed === 0) {
      await this.deps.limits.release('provision', uuid);
      if (!(await holdsLiveKey(prisma, app.applicationId))) throw new NotFoundError('onboarding');
      const now = await this.find(app, uuid);
      if (now.status !== 'pending') return replay(now);
      throw new OnboardingConflictError('This onboarding is being provisioned by another request');
    }

    const state: ProvisionState = {
      onboardingId: uuid,
      applicationId: app.applicationId,
      label: existing.organizationName ?? this.fullDomain(existing),
      fqdn: this.fullDomain(existing),
      generateApiKey,
      ip: meta.ip,
      apiKey: null,
      apiSecret: null,
    };
    const result = await this.runSteps(state).catch(async (error: unknown) => {
      // The runner itself failed (e.g. the database went away): free the onboarding for a retry.
      await prisma.onboarding
        .update({ where: { id: uuid }, data: { provisioningUntil: null } })
        .catch(() => {});
      await this.deps.limits.release('provision', uuid).catch(() => {});
      throw error;
    });
    if (!result.ok && result.error instanceof RevokedDuringProvisionError) {
      // Nothing activated, and nothing of the application can use what the steps did until a
      // new key (decision 096): released while this request still holds the lease, so that no
      // other provision makes records meanwhile. Should a provider fail, the flags stay true
      // and the revocation's job releases them at the lease's end.
      await this.deps.limits.release('provision', uuid);
      const released = await this.deps.provisioning.releaseSubdomain(existing.subdomain).then(
        () => true,
        (error: unknown) => {
          logger.warn({ err: error, onboardingId: uuid }, 'records of a revoked provision not released');
          return false;
        },
      );
      await prisma.onboarding.update({
        where: { id: uuid },
        data: { provisioningUntil: null, ...(released ? UNPROVISIONED : {}) },
      });
      throw new NotFoundError('onboarding');
    }
    if (!result.ok) {
      // The guide asks integrators to retry /provision after an infrastructure incident: an
      // attempt that failed on our side does not spend the uuid's daily budget.
      await this.deps.limits.release('provision', uuid);
      const done = await prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } });
      await prisma.$transaction(async (tx) => {
        await tx.onboarding.update({
          where: { id: uuid },
          data: {
            provisioningUntil: null,
            infrastructureStatus: done.dnsConfigured || done.sslConfigured ? 'partial' : 'failed',
            lastError: `${result.failedStep}: ${result.error.message.slice(0, 300)}`,
          },
        });
        await this.deps.webhooks.queue(tx, 'onboarding.failed', uuid, { failed_step: result.failedStep });
      });
      logger.warn(
        { onboardingId: uuid, step: result.failedStep, runId: result.runId },
        'onboarding provisioning stopped',
      );
      throw new OnboardingProvisioningFailedError(result.failedStep, result.runId);
    }
    logger.info({ onboardingId: uuid, apiKeyGenerated: state.apiKey !== null }, 'onboarding provisioned');
    return {
      onboarding: await this.find(app, uuid),
      apiKey: state.apiKey,
      apiSecret: state.apiSecret,
      isIdempotent: false,
      rate,
    };
  }

  /**
   * The `release_onboarding_names` job, queued by a revocation (decision 096): unpublishes the
   * name and revokes the certificate of each pending onboarding of an application that holds no
   * live key, and records that neither is done, so a provision with a new key makes fresh ones.
   * An onboarding is released under its row lock, and only while it is pending, unleased and its
   * application keyless: a provision's claim waits for it, and a new key's provision after it
   * finds nothing done. One a provision holds is left to that provision (refused at its commit,
   * it releases its own); the job comes back when the last lease ends, in case it did not.
   * Safe to run twice.
   */
  async releaseUnkeyed(applicationId: string): Promise<void> {
    const { prisma, logger } = this.deps;
    if (await holdsLiveKey(prisma, applicationId)) return;
    const candidates = await prisma.onboarding.findMany({
      where: {
        applicationId,
        status: 'pending',
        // A provision that crashed between a step's work and its flag leaves only its attempt.
        OR: [{ dnsConfigured: true }, { sslConfigured: true }, { provisioningAttempts: { gt: 0 } }],
      },
      select: { id: true, subdomain: true, provisioningUntil: true },
    });
    let leasedUntil: Date | undefined;
    let released = 0;
    for (const onboarding of candidates) {
      // The lease's clock is this process's, as the claim's (provision above).
      const now = new Date();
      const until = onboarding.provisioningUntil;
      if (until && until > now) {
        if (!leasedUntil || until > leasedUntil) leasedUntil = until;
        continue;
      }
      const done = await prisma.$transaction(
        async (tx) => {
          const [locked] = await tx.$queryRaw<{ id: string }[]>`
            SELECT id FROM onboardings
             WHERE id = ${onboarding.id}::uuid AND status = 'pending'
               AND (provisioning_until IS NULL OR provisioning_until < ${now})
               AND NOT EXISTS (SELECT 1 FROM application_keys
                                WHERE application_id = ${applicationId}::uuid AND revoked_at IS NULL)
             FOR UPDATE`;
          if (!locked) return false;
          await this.deps.provisioning.releaseSubdomain(onboarding.subdomain);
          await tx.onboarding.update({ where: { id: onboarding.id }, data: UNPROVISIONED });
          return true;
        },
        { timeout: RELEASE_TIMEOUT_MS },
      );
      if (done) released += 1;
    }
    if (leasedUntil) {
      await addJob(
        prisma,
        'release_onboarding_names',
        { applicationId },
        { runAt: leasedUntil, jobKey: releaseJobKey(applicationId) },
      );
    }
    if (released > 0) logger.info({ applicationId, released }, 'names of a revoked application released');
  }

  private runSteps(state: ProvisionState) {
    const { prisma } = this.deps;
    /** Where the onboarding row remembers a step done, so that a retry skips it. */
    const recorded = (flag: 'dnsConfigured' | 'sslConfigured') => ({
      fqdn: async (state: ProvisionState) => state.fqdn,
      done: async (state: ProvisionState) =>
        (await prisma.onboarding.findUniqueOrThrow({ where: { id: state.onboardingId } }))[flag],
      markDone: async (state: ProvisionState) => {
        await prisma.onboarding.update({
          where: { id: state.onboardingId },
          data: { [flag]: true, infrastructureStatus: 'partial' },
        });
      },
    });
    const plan = this.deps.provisioning.plans.onboard<ProvisionState>({
      dns: recorded('dnsConfigured'),
      certificate: recorded('sslConfigured'),
      commit: (tx, state) => this.commit(tx, state),
    });
    return this.deps.provisioning.run(
      plan,
      { kind: 'ONBOARDING', id: state.onboardingId, name: state.label },
      state,
    );
  }

  /** `activated`, the credentials' hashes and the audit entry, in the commit's transaction. */
  private async commit(tx: Transaction, state: ProvisionState): Promise<void> {
    const issued = state.generateApiKey
      ? issueApiCredentials(state.onboardingId, this.deps.config.encryptionKey)
      : null;
    // Activated, with its credentials, only while the application holds a live key (whileKeyed,
    // share-locked until this commits; decision 091): a revocation waits for this commit and then
    // clears the credentials, and one that committed first leaves the onboarding pending.
    const keys = issued?.data;
    const activated = await tx.execute(Prisma.sql`
      UPDATE onboardings
      SET status = 'activated', infrastructure_status = 'ready', activated_at = now(),
        provisioning_until = NULL, last_error = NULL, updated_at = now()
        ${
          keys
            ? Prisma.sql`, api_key_id = ${keys.apiKeyId}::text, api_key_hash = ${keys.apiKeyHash}::text,
              api_secret_encrypted = ${keys.apiSecretEncrypted}::text`
            : Prisma.empty
        }
      WHERE id = ${state.onboardingId}::uuid AND ${whileKeyed(state.applicationId)}`);
    if (activated === 0) throw new RevokedDuringProvisionError();
    await tx.execute(
      auditSql({
        action: 'onboarding.provisioned',
        targetType: 'onboarding',
        targetId: state.onboardingId,
        data: { applicationId: state.applicationId, apiKeyGenerated: issued !== null },
        ip: state.ip,
      }),
    );
    await this.deps.webhooks.queue(tx, 'onboarding.provisioned', state.onboardingId);
    // Set before the transaction commits; provision() hands them out only once the run succeeded.
    state.apiKey = issued?.apiKey ?? null;
    state.apiSecret = issued?.apiSecret ?? null;
  }

  /**
   * The application's tenant is ready: `completed`. Repeating it with the same tenant id answers
   * the same; another tenant id is a conflict.
   * @throws NotFoundError, OnboardingConflictError
   */
  async complete(
    app: ApplicationPrincipal,
    uuid: string,
    input: CompleteInput,
    meta: CallMeta,
  ): Promise<Onboarding> {
    const { prisma } = this.deps;
    return prisma.$transaction(async (tx) => {
      // Row lock: two concurrent completions are ordered, the second sees the first. Only while
      // the application holds a live key (whileKeyed, decision 091): a revocation waits for this
      // commit, and a completion authenticated before a revocation that committed first is refused.
      const [locked] = await tx.$queryRaw<{ id: string }[]>`
        SELECT id FROM onboardings
         WHERE id = ${uuid}::uuid AND application_id = ${app.applicationId}::uuid AND ${whileKeyed(app.applicationId)}
         FOR UPDATE`;
      if (!locked) throw new NotFoundError('onboarding');
      const onboarding = await tx.onboarding.findUniqueOrThrow({ where: { id: uuid } });
      if (onboarding.status === 'pending') {
        throw new OnboardingConflictError('Provision the onboarding before completing it');
      }
      if (onboarding.status === 'completed') {
        if (onboarding.tenantId === input.tenantId) return onboarding;
        throw new OnboardingConflictError('This onboarding was already completed with another tenant_id');
      }
      const completed = await tx.onboarding.update({
        where: { id: uuid },
        data: {
          status: 'completed',
          tenantId: input.tenantId,
          completionMetadata: input.metadata as Prisma.InputJsonValue,
          completedAt: new Date(),
        },
      });
      await recordAudit(tx, {
        action: 'onboarding.completed',
        targetType: 'onboarding',
        targetId: uuid,
        data: { applicationId: app.applicationId, tenantId: input.tenantId },
        ip: meta.ip,
      });
      await this.deps.webhooks.queue(tx, 'onboarding.completed', uuid);
      return completed;
    });
  }
}

/** `bright-harbor-4821` → `Bright Harbor 4821`. */
function readableName(subdomain: string): string {
  return subdomain
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}
