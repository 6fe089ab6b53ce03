/**
 * The service wiring: builds every long-lived service once, in dependency order, and owns their
 * lifecycle (background work started after the listener, everything closed in reverse). It
 * neither routes nor adapts: the HTTP route table (http/routes.ts), GraphQL (http/graphql.ts) and
 * the WebSocket glue (http/graphql-ws.ts) receive what this builds.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { BaseDeps, Deps } from './context.js';
import { releaseDeadWorkers, startWorker, type Worker } from './jobs/index.js';
import { createMetrics } from './metrics.js';
import { AccountService } from './modules/account/service.js';
import { postgresLimitStore, redisLimitStore } from './modules/auth/lockout.js';
import { registerHashingMetrics } from './modules/auth/passwords.js';
import { AuthService } from './modules/auth/service.js';
import { SessionCache } from './modules/auth/session-cache.js';
import { SessionWatch } from './modules/auth/session-watch.js';
import { createCertificateIssuer } from './modules/certificates/service.js';
import { ConsentService } from './modules/consents/service.js';
import { createDnsProvider, createDnsServer, type DnsLimits } from './modules/dns/service.js';
import {
  CommittedMail,
  createMailTransport,
  deliverMail,
  type MailTransport,
} from './modules/mail/service.js';
import { MembersService } from './modules/members/service.js';
import { MoveService } from './modules/moves/index.js';
import { ApplicationService } from './modules/onboarding/applications.js';
import { IdempotencyStore } from './modules/onboarding/idempotency.js';
import { OnboardingLimits, postgresCounterStore, redisCounterStore } from './modules/onboarding/limits.js';
import { OnboardingService } from './modules/onboarding/service.js';
import { ProvisioningService } from './modules/provisioning/service.js';
import { Reconciler } from './modules/registration/reconciler.js';
import { RegistrationService } from './modules/registration/service.js';
import { RolloutService, type RolloutTuning } from './modules/rollouts/service.js';
import { createSmsGateway } from './modules/sms/gateway.js';
import { EmailVerificationService } from './modules/users/email-verification.js';
import { WebhookService } from './modules/webhooks/service.js';
import { createEventBus } from './pubsub/index.js';

export interface WiringOptions {
  /** See BuildAppOptions.mailTransport. */
  mailTransport?: MailTransport;
  /** See BuildAppOptions.mailSendGraceMs. */
  mailSendGraceMs?: number;
  /** See BuildAppOptions.dnsPort. */
  dnsPort?: number | false;
  /** See BuildAppOptions.dnsLimits. */
  dnsLimits?: DnsLimits;
  /** See BuildAppOptions.jobPollIntervalMs. */
  jobPollIntervalMs?: number;
  /** See BuildAppOptions.jobCrontab. */
  jobCrontab?: string;
  /** See BuildAppOptions.rolloutTuning. */
  rolloutTuning?: Partial<RolloutTuning>;
}

export interface Services {
  deps: Deps;
  /** Ends live subscriptions whose session ended (a yoga plugin, http/graphql.ts). */
  sessionWatch: SessionWatch;
  /** Port of the built-in DNS server once listening; undefined when it does not run. */
  readonly dnsPort: number | undefined;
  /** Starts the built-in DNS server, when it runs. @returns its port */
  listenDns(): Promise<number | undefined>;
  /** Background work: provisioning's timers, the job worker, the reconciler. Once listening. */
  startBackground(): Promise<void>;
  /** Stops background work, then closes every service and the databases, in reverse order. */
  close(): Promise<void>;
}

export async function wireServices(base: BaseDeps, options: WiringOptions = {}): Promise<Services> {
  const { config, logger } = base;
  const metrics = createMetrics();
  registerHashingMetrics(metrics.registry);
  const events = await createEventBus({ config, connectionString: base.db.centralUrl, logger });
  // Losing an event must never fail the operation that emitted it.
  const safely = (topic: string, send: () => void) => {
    try {
      send();
    } catch (error) {
      logger.warn({ err: error, topic }, 'event not published');
    }
  };
  const dns = createDnsProvider(config, base.db.prisma, logger);
  const certificates = createCertificateIssuer(config, base.db.prisma, dns, logger);
  const dnsServer = createDnsServer(config, dns, logger, {
    port: options.dnsPort ?? (config.dnsPort === 0 ? false : config.dnsPort),
    centralUrl: base.db.centralUrl,
    limits: options.dnsLimits,
  });
  const provisioning = new ProvisioningService({
    ...base,
    dns,
    certificates,
    metrics,
    publishProgress: (event) => safely('provisioning', () => events.pubsub.publish('provisioning', event)),
    publishHealth: (health) =>
      safely('clinicHealth', () =>
        events.pubsub.publish('clinicHealth', { ...health, lastCheck: health.lastCheck.toISOString() }),
      ),
  });
  // Lockouts and send limits: Redis when configured (several instances), else the central database.
  const limitsRedis = config.redisUrl
    ? new Redis(config.redisUrl, { connectionName: 'onramp-limits', lazyConnect: true })
    : undefined;
  limitsRedis?.on('error', (error) => logger.warn({ err: error }, 'rate-limit Redis connection error'));
  await limitsRedis?.connect();
  const limits = limitsRedis ? redisLimitStore(limitsRedis) : postgresLimitStore(base.db.prisma);
  const idempotency = new IdempotencyStore(base.db.prisma);
  // Request counters (onboarding, registration and invitation limits): the same backend.
  const counters = limitsRedis ? redisCounterStore(limitsRedis) : postgresCounterStore(base.db.prisma);
  const mail = options.mailTransport ?? createMailTransport(config, logger);
  const deliverDeps = {
    prisma: base.db.prisma,
    transport: mail,
    logger,
    key: config.encryptionKey,
    graceMs: options.mailSendGraceMs,
  };
  const committedMail = new CommittedMail(deliverDeps);
  const registration = new RegistrationService({
    ...base,
    prisma: base.db.prisma,
    provisioning,
    dns,
    certificates,
    counters,
    committedMail,
  });
  const reconciler = new Reconciler({
    prisma: base.db.prisma,
    logger,
    provisioning,
    leaseMs: config.provisioningLeaseSeconds * 1000,
    alerts: { servers: base.db.servers, adminEmail: config.adminEmail, encryptionKey: config.encryptionKey },
  });
  // Sessions that end tell every instance: cached session checks are dropped (here at once),
  // live subscriptions of them end.
  const sessionCache = new SessionCache(events);
  // The operation answers once the broker has the end, so the caller's next request, wherever
  // it lands, finds it known (session-cache.ts).
  const sessionsEnded = async (userId: string) => {
    sessionCache.ended(userId);
    safely('sessions', () => events.pubsub.publish('sessions', { userId }));
    await events.published();
  };
  const auth = new AuthService({
    ...base,
    prisma: base.db.prisma,
    provisioning,
    limits,
    mail,
    sessionsEnded,
    sessionCache,
  });
  await auth.bootstrapSuperAdmin();
  const sessionWatch = new SessionWatch({ auth, events, logger, registry: metrics.registry });
  const account = new AccountService({ prisma: base.db.prisma, provisioning, sessionsEnded });
  const sms = createSmsGateway(config, logger);
  const members = new MembersService({
    ...base,
    prisma: base.db.prisma,
    sms,
    mail,
    counters,
    sessionsEnded,
  });
  const emailVerification = new EmailVerificationService({
    config,
    logger,
    prisma: base.db.prisma,
    committedMail,
  });
  // Onboarding service: its rate limits share the lockouts' backend (Redis or PostgreSQL).
  const applications = new ApplicationService(base.db.prisma);
  const webhooks = new WebhookService({ config, logger, prisma: base.db.prisma });
  const onboarding = new OnboardingService({
    config,
    logger,
    prisma: base.db.prisma,
    webhooks,
    limits: OnboardingLimits.fromConfig(counters, config),
    provisioning,
  });
  const moves = new MoveService({
    ...base,
    metrics,
    provisioning,
    publishProgress: (event) => safely('provisioning', () => events.pubsub.publish('provisioning', event)),
  });
  const rollouts = new RolloutService({
    ...base,
    provisioning,
    tuning: options.rolloutTuning,
    publishRollout: (rolloutId) => safely('rollouts', () => events.pubsub.publish('rollouts', { rolloutId })),
  });
  const deps: Deps = {
    ...base,
    metrics,
    events,
    provisioning,
    rollouts,
    registration,
    mail,
    committedMail,
    reconciler,
    auth,
    account,
    sms,
    members,
    moves,
    consents: new ConsentService(base.db.prisma, config, sessionsEnded),
    emailVerification,
    dns,
    certificates,
    applications,
    onboarding,
    webhooks,
    idempotency,
  };

  let worker: Worker | undefined;
  // This process, for the job workers' liveness (docs/decisions/082).
  const instanceId = randomUUID();
  let reconcileTimer: NodeJS.Timeout | undefined;
  // The pass in flight, awaited by close(): one that ended after the databases closed would
  // fail and log once nobody listens any more.
  let reconciling: Promise<void> | undefined;
  const reconcile = () => {
    reconciling ??= reconcilePass().finally(() => {
      reconciling = undefined;
    });
    return reconciling;
  };
  const reconcilePass = () =>
    Promise.all([
      reconciler.reconcile(),
      auth.codes.prune(),
      registration.expireUnverified(),
      moves.recoverAbandoned(),
      committedMail.requeueUnsent(),
      counters.prune(),
      limits.prune(),
      idempotency.prune(),
      onboarding.credentials.prune(),
      releaseDeadWorkers(base.db.prisma, logger),
    ])
      .then(([result, , expired]) => {
        if (Object.values(result).some((count) => count > 0) || expired > 0)
          logger.info({ result, expiredRegistrations: expired }, 'reconciled provisioning');
      })
      .catch((error: unknown) => logger.error({ err: error }, 'reconciliation failed'));

  return {
    deps,
    sessionWatch,
    get dnsPort() {
      return dnsServer?.port;
    },
    listenDns: async () => {
      if (!dnsServer) return undefined;
      const port = await dnsServer.listen();
      logger.info({ port, zone: config.baseDomain }, 'built-in DNS server listening');
      return port;
    },
    startBackground: async () => {
      provisioning.start();
      rollouts.start();
      worker = await startWorker({
        connectionString: base.db.centralUrl,
        instanceId,
        logger,
        pollInterval: options.jobPollIntervalMs,
        crontab: options.jobCrontab,
        handlers: {
          send_email: ({ outboxId }) => deliverMail(deliverDeps, outboxId),
          provision_clinic: ({ clinicId, attempt }) => registration.continueRegistration(clinicId, attempt),
          deliver_webhook: ({ deliveryId }) => webhooks.deliver(deliveryId),
          release_onboarding_names: ({ applicationId }) => onboarding.releaseUnkeyed(applicationId),
          purge_quarantine: async () => {
            await reconciler.purge();
          },
        },
      });
      // Runs abandoned by a crash (expired leases) and orphans: now, then every lease period.
      void reconcile();
      reconcileTimer = setInterval(reconcile, config.provisioningLeaseSeconds * 1000);
      reconcileTimer.unref();
    },
    close: async () => {
      await dnsServer?.close();
      clearInterval(reconcileTimer);
      await reconciling;
      await auth.codes.idle();
      await emailVerification.idle();
      await committedMail.idle();
      await worker?.stop();
      mail.close();
      await rollouts.close();
      await provisioning.close();
      await sessionWatch.close();
      await sessionCache.close();
      await events.close();
      limitsRedis?.disconnect();
      await deps.db.close();
    },
  };
}
