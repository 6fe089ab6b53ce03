import type { Databases } from './db/database.js';
import type { RunScoped } from './db/request-scope.js';
import type { Config } from './env.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { AccountService } from './modules/account/service.js';
import type { AuthService } from './modules/auth/service.js';
import type { Viewer } from './modules/auth/viewer.js';
import type { CertificateIssuer } from './modules/certificates/issuer.js';
import type { ConsentService } from './modules/consents/service.js';
import type { DnsProvider } from './modules/dns/provider.js';
import type { CommittedMail, MailTransport } from './modules/mail/service.js';
import type { MembersService } from './modules/members/service.js';
import type { MoveService } from './modules/moves/index.js';
import type { ApplicationPrincipal, ApplicationService } from './modules/onboarding/applications.js';
import type { IdempotencyStore } from './modules/onboarding/idempotency.js';
import type { OnboardingService } from './modules/onboarding/service.js';
import type { ProvisioningService } from './modules/provisioning/service.js';
import type { Reconciler } from './modules/registration/reconciler.js';
import type { RegistrationService } from './modules/registration/service.js';
import type { RolloutService } from './modules/rollouts/service.js';
import type { SmsGateway } from './modules/sms/gateway.js';
import type { EmailVerificationService } from './modules/users/email-verification.js';
import type { WebhookService } from './modules/webhooks/service.js';
import type { EventBus } from './pubsub/index.js';

export type { Viewer };

/** What main.ts (or a test) hands to buildApp(). */
export interface BaseDeps {
  config: Config;
  logger: Logger;
  db: Databases;
  startedAt: Date;
}

/** Long-lived dependencies, built once by buildApp() and shared by every request. */
export interface Deps extends BaseDeps {
  metrics: Metrics;
  events: EventBus;
  provisioning: ProvisioningService;
  /** Fleet rollouts of the clinic schema (docs/decisions/047). */
  rollouts: RolloutService;
  registration: RegistrationService;
  reconciler: Reconciler;
  auth: AuthService;
  account: AccountService;
  sms: SmsGateway;
  members: MembersService;
  /** Moves of clinic databases between servers (moveClinic). */
  moves: MoveService;
  /** E-mail verification links of accounts: spending them, sending new ones. */
  /** A signed-in user's own consents (terms, privacy notice). */
  consents: ConsentService;
  emailVerification: EmailVerificationService;
  mail: MailTransport;
  /** Sends staged mail once its transaction has committed; sweeps what is left (mail/after-commit.ts). */
  committedMail: CommittedMail;
  /** Publishes clinic subdomains (DNS_PROVIDER). */
  dns: DnsProvider;
  /** Issues clinic certificates (CERT_PROVIDER). */
  certificates: CertificateIssuer;
  /** Onboarding service (README, "Onboarding service"): applications, onboardings, Idempotency-Key. */
  applications: ApplicationService;
  onboarding: OnboardingService;
  /** Integrator webhooks: endpoints, deliveries, replays. */
  webhooks: WebhookService;
  idempotency: IdempotencyStore;
}

export interface Context {
  deps: Deps;
  viewer: Viewer | null;
  /** The application of a valid `X-Master-Key` header, else null. */
  application: ApplicationPrincipal | null;
  requestId: string;
  /** Client address, for rate limits and the audit log. */
  ip: string | null;
  userAgent: string | null;
  logger: Logger;
  /**
   * A transaction on the row-level-secured request connection, scoped to the viewer: use it for
   * clinic-scoped data read or written on the viewer's behalf.
   */
  scoped: RunScoped;
}
