/**
 * Clinic registration: validates, then runs one provisioning saga — central records, subdomain,
 * the clinic database, DNS, certificate, commit, verification e-mail. Strict mode undoes
 * everything on any failure; hybrid mode turns a transient failure into a background job
 * (up to 3 attempts in all) that was enqueued with the central records, so even a crash right
 * after them cannot strand the clinic.
 */
import type { CentralPrisma, ClinicServer } from '../../db/database.js';
import type { Config } from '../../env.js';
import type { Prisma } from '../../generated/central/client.js';
import { addJob } from '../../jobs/index.js';
import { type CounterStore, RateLimit, takeAll } from '../../limits/counters.js';
import type { Logger } from '../../logger.js';
import { hashPassword } from '../auth/passwords.js';
import type { CertificateIssuer } from '../certificates/issuer.js';
import { clinicFqdn, type DnsProvider } from '../dns/provider.js';
import { enqueueMail } from '../mail/service.js';
import type { SagaStep } from '../provisioning/saga.js';
import type { AuditActor, ProvisioningService } from '../provisioning/service.js';
import { ProvisioningFailedError } from '../provisioning/service.js';
import { clinicRecord, type ProvisionState } from '../provisioning/steps.js';
import { clinicSubdomain, preferredSubdomain, reserveSubdomain } from '../subdomains/allocator.js';
import { issueEmailVerification } from '../users/email-verification.js';
import { EmailTakenError } from '../users/errors.js';
import { isTransient } from './transient.js';
import type { RegisterClinicInput } from './validation.js';

/** Attempts in all, the synchronous one included (hybrid mode). */
export const MAX_ATTEMPTS = 3;
/** Hybrid mode: when the synchronous attempt neither finishes nor reschedules (a crash), the job runs after this. */
const CRASH_FALLBACK_MS = 5 * 60_000;

export type RegistrationStatus = 'READY' | 'PENDING';

interface RegistrationState extends ProvisionState {
  passwordHash: string;
  phone: string | null;
  hybrid: boolean;
}

export interface RegistrationDeps {
  config: Config;
  logger: Logger;
  prisma: CentralPrisma;
  provisioning: ProvisioningService;
  dns: DnsProvider;
  certificates: CertificateIssuer;
  /** Where the registration limits are counted (shared by every instance). */
  counters: CounterStore;
}

export interface Registered {
  clinicId: string;
  userId: string;
  status: RegistrationStatus;
}

const jobKey = (clinicId: string) => `provision:${clinicId}`;
/** Unverified registrations undone per pass at most; the next pass takes the rest. */
const EXPIRY_BATCH = 20;

export class RegistrationService {
  /** Every registration creates a database, a role, DNS records and a certificate: bounded. */
  private readonly perAddress: RateLimit;
  private readonly overall: RateLimit;

  constructor(private readonly deps: RegistrationDeps) {
    const { ip, total } = deps.config.registrationLimits;
    this.perAddress = new RateLimit(deps.counters, 'registration.ip', ip);
    this.overall = new RateLimit(deps.counters, 'registration.total', total);
  }

  /**
   * @throws RATE_LIMITED (a GraphQL error) when this address, or everyone together, registered
   * too often; counted before anything else is done.
   * @throws EmailTakenError when the e-mail is in use (also when a concurrent registration wins).
   * @throws ProvisioningFailedError after undoing everything.
   */
  async register(input: RegisterClinicInput, meta: { ip: string | null }): Promise<Registered> {
    const address = meta.ip ?? 'unknown';
    await takeAll([
      [this.perAddress, address],
      [this.overall, 'all'],
    ]);
    try {
      return await this.registerCounted(input);
    } catch (error) {
      // A failure on our side is not the caller's attempt (it may retry at once).
      if (error instanceof ProvisioningFailedError) {
        await Promise.all([this.perAddress.release(address), this.overall.release('all')]);
      }
      throw error;
    }
  }

  private async registerCounted(input: RegisterClinicInput): Promise<Registered> {
    const { prisma, provisioning, config } = this.deps;
    // Fast path; the unique index decides races (central_records maps its violation).
    if (await prisma.user.findUnique({ where: { email: input.adminEmail }, select: { id: true } })) {
      throw new EmailTakenError();
    }
    const hybrid = config.registrationMode === 'hybrid';
    const base = await provisioning.newState({
      clinicName: input.clinicName,
      country: input.country,
      admin: {
        userId: null,
        firstName: input.adminFirstName,
        lastName: input.adminLastName,
        email: input.adminEmail,
      },
    });
    const state: RegistrationState = {
      ...base,
      passwordHash: await hashPassword(input.adminPassword),
      phone: input.adminPhone ?? null,
      hybrid,
    };
    const steps = [this.centralRecordsStep(), ...this.remainingSteps()];
    const result = await provisioning.runSaga('REGISTER', state, steps, {
      // Only once the central records exist is there something to resume.
      suspendOn: (error, step) => hybrid && step !== 'central_records' && isTransient(error),
    });
    const userId = state.admin?.userId as string;
    if (result.ok) return { clinicId: state.clinicId, userId, status: 'READY' };
    if (result.error instanceof EmailTakenError) throw result.error;
    if (result.suspended) {
      await prisma.$transaction(async (tx) => {
        await tx.clinic.update({ where: { id: state.clinicId }, data: { status: 'PENDING' } });
        await this.scheduleAttempt(tx, state.clinicId, 2);
      });
      return { clinicId: state.clinicId, userId, status: 'PENDING' };
    }
    // The clinic is rolled back; the entry keeps what was attempted (the "registration." filter).
    await prisma.auditLog
      .create({
        data: {
          action: 'registration.failed',
          actorId: null,
          clinicId: state.clinicId,
          targetType: 'clinic',
          targetId: state.clinicId,
          data: {
            clinicName: state.clinicName,
            step: result.failedStep,
            runId: result.runId,
            reason: result.error.message.slice(0, 300),
          },
        },
      })
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'failed registration not audited'));
    throw new ProvisioningFailedError(result.failedStep, result.runId);
  }

  /** The `provision_clinic` job: the next attempt of a suspended registration. */
  async continueRegistration(clinicId: string, attempt: number): Promise<void> {
    const { prisma, provisioning, logger } = this.deps;
    const clinic = await prisma.clinic.findUnique({
      where: { id: clinicId },
      include: { users: { where: { role: 'CLINIC_ADMIN' }, orderBy: { createdAt: 'asc' }, take: 1 } },
    });
    if (!clinic || clinic.status === 'READY' || clinic.status === 'FAILED') return; // nothing left to do
    const admin = clinic.users[0];
    const server = provisioning.integrity.servers.get(clinic.databaseServerId);
    if (!admin || !server) {
      logger.error({ clinicId }, 'pending clinic without admin or known server; giving up');
      await this.giveUp(clinicId, attempt, 'clinic admin or database server missing');
      return;
    }
    const state = registrationState(clinic, admin, server, true);
    const last = attempt >= MAX_ATTEMPTS;
    const result = await provisioning.runSaga('REGISTER', state, this.remainingSteps(), {
      attempt,
      // Before the last attempt a failure keeps what exists for the next one; the last undoes.
      suspendOn: () => !last,
    });
    if (result.ok) return;
    if (!last) {
      await this.scheduleAttempt(prisma, clinicId, attempt + 1);
      return;
    }
    await this.giveUp(clinicId, attempt, result.error.message);
  }

  /** Final failure of a hybrid registration: the database work is undone (by the saga), the clinic marked FAILED. */
  private async giveUp(clinicId: string, attempt: number, reason: string): Promise<void> {
    const { prisma, config } = this.deps;
    const clinic = await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'FAILED' } });
    const admins = await prisma.user.findMany({ where: { role: 'SUPER_ADMIN' }, select: { email: true } });
    const recipients = [
      ...new Set([config.adminEmail, ...admins.flatMap((user) => (user.email ? [user.email] : []))]),
    ];
    await prisma.$transaction(async (tx) => {
      for (const to of recipients) {
        await enqueueMail(
          tx,
          {
            to,
            kind: 'provisioning_failed',
            subject: `Onramp: provisioning of "${clinic.name}" failed`,
            text: [
              `Provisioning of clinic "${clinic.name}" (${clinic.id}) failed after ${attempt} attempts and was rolled back.`,
              `Last error: ${reason.slice(0, 300)}`,
              'The clinic is marked FAILED; retry it with retryProvisioning or remove it with deleteClinic.',
            ].join('\n\n'),
          },
          this.deps.config.encryptionKey,
        );
      }
      await tx.auditLog.create({
        data: {
          action: 'registration.failed',
          clinicId,
          targetType: 'clinic',
          targetId: clinicId,
          data: { attempt, reason: reason.slice(0, 300), alerted: recipients.length },
        },
      });
    });
  }

  private async scheduleAttempt(
    db: Prisma.TransactionClient | CentralPrisma,
    clinicId: string,
    attempt: number,
  ): Promise<void> {
    const base = this.deps.config.provisioningRetryBaseMs * 2 ** (attempt - 2);
    const delay = Math.round(base * (0.5 + Math.random())); // jitter: spread retries of a shared outage
    await addJob(
      db,
      'provision_clinic',
      { clinicId, attempt },
      {
        jobKey: jobKey(clinicId),
        runAt: new Date(Date.now() + delay),
        maxAttempts: 1, // attempts are counted here, not by graphile-worker
      },
    );
  }

  /** Operator action: schedule a new attempt for a FAILED or PENDING clinic. */
  async retry(clinicId: string, actor: AuditActor): Promise<void> {
    const { prisma } = this.deps;
    await prisma.$transaction(async (tx) => {
      await tx.clinic.update({ where: { id: clinicId }, data: { status: 'PENDING' } });
      await tx.auditLog.create({
        data: {
          action: 'clinic.retry_provisioning',
          actorId: actor.userId,
          ip: actor.ip ?? null,
          clinicId,
          targetType: 'clinic',
          targetId: clinicId,
        },
      });
      await addJob(
        tx,
        'provision_clinic',
        { clinicId, attempt: 1 },
        { jobKey: jobKey(clinicId), maxAttempts: 1 },
      );
    });
  }

  /**
   * Undoes registrations nobody confirmed (docs/decisions/018): a READY or FAILED clinic older
   * than UNVERIFIED_CLINIC_TTL, with a clinic admin, none of whose users ever verified an
   * e-mail, signed in or got a client. Its certificate, DNS records, database and role and its
   * central records go, through the undo of each registration step, as a recorded DELETE run;
   * its e-mail and subdomain are free again. Run by every instance's periodic pass: each clinic
   * is claimed (DELETING) by one of them.
   * @returns how many registrations were undone.
   */
  async expireUnverified(): Promise<number> {
    const { prisma, provisioning, logger, config } = this.deps;
    const claimed = await prisma.$queryRaw<{ id: string; previous: 'READY' | 'FAILED' }[]>`
      WITH expired AS (
        SELECT c.id, c.status FROM clinics c
         WHERE c.status IN ('READY', 'FAILED')
           AND c.created_at < now() - make_interval(secs => ${config.unverifiedClinicTtlSeconds})
           AND EXISTS (SELECT 1 FROM users u WHERE u.clinic_id = c.id AND u.role = 'CLINIC_ADMIN')
           AND NOT EXISTS (SELECT 1 FROM users u WHERE u.clinic_id = c.id AND u.email_verified_at IS NOT NULL)
           AND NOT EXISTS (SELECT 1 FROM users u JOIN sessions s ON s.user_id = u.id WHERE u.clinic_id = c.id)
           AND NOT EXISTS (SELECT 1 FROM client_records r WHERE r.clinic_id = c.id)
         ORDER BY c.created_at
         LIMIT ${EXPIRY_BATCH}
         FOR UPDATE OF c SKIP LOCKED)
      UPDATE clinics SET status = 'DELETING', updated_at = now()
        FROM expired WHERE clinics.id = expired.id
      RETURNING clinics.id::text AS id, expired.status::text AS previous`;
    let undone = 0;
    for (const { id, previous } of claimed) {
      const state = await this.stateOf(id);
      if (!state) continue;
      const result = await provisioning.runSaga('DELETE', state, this.expirySteps(), {
        // A failed step leaves the rest for the next pass (every undo is idempotent).
        suspendOn: () => true,
      });
      if (result.ok) {
        undone += 1;
        logger.info({ clinicId: id, runId: result.runId }, 'unverified registration undone');
      } else {
        await prisma.clinic.updateMany({ where: { id, status: 'DELETING' }, data: { status: previous } });
        logger.warn(
          { clinicId: id, runId: result.runId },
          'undoing an unverified registration failed; retried later',
        );
      }
    }
    return undone;
  }

  /** The registration's undo, last step first, as the steps of a DELETE run. */
  private expirySteps(): SagaStep<RegistrationState>[] {
    const undo = (step: SagaStep<RegistrationState>): SagaStep<RegistrationState> => ({
      name: step.name,
      run: async (state, context) => {
        await step.undo?.(state, context);
        return undefined;
      },
    });
    return [
      undo(this.sslStep()),
      undo(this.dnsStep()),
      {
        name: 'create_database',
        run: async (state) => {
          await this.deps.provisioning.clients.evict(state.clinicId);
          // Quarantined, not dropped: an unverified clinic may already hold data (decision 040).
          await this.deps.provisioning.ledger.quarantineClinic(
            state.clinicId,
            'unverified registration expired',
            this.deps.config.clinicTrashRetentionSeconds,
          );
          return { note: `quarantined ${state.databaseName}` };
        },
      },
      {
        name: 'central_records',
        run: async (state, context) => {
          await this.centralRecordsStep().undo?.(state, context);
          await this.deps.prisma.auditLog.create({
            data: {
              action: 'registration.expired',
              clinicId: state.clinicId,
              targetType: 'clinic',
              targetId: state.clinicId,
              data: { ttlSeconds: this.deps.config.unverifiedClinicTtlSeconds },
            },
          });
          return { note: 'e-mail and subdomain released' };
        },
      },
    ];
  }

  /** What the steps of a registration need to know about an existing clinic. */
  private async stateOf(clinicId: string): Promise<RegistrationState | undefined> {
    const { prisma, provisioning, logger } = this.deps;
    const clinic = await prisma.clinic.findUnique({
      where: { id: clinicId },
      include: { users: { where: { role: 'CLINIC_ADMIN' }, orderBy: { createdAt: 'asc' }, take: 1 } },
    });
    const server = clinic && provisioning.integrity.servers.get(clinic.databaseServerId);
    if (!clinic || !server) {
      logger.error({ clinicId }, 'clinic or its database server missing; not undone');
      return undefined;
    }
    return registrationState(clinic, clinic.users[0], server, false);
  }

  private centralRecordsStep(): SagaStep<RegistrationState> {
    const { prisma } = this.deps;
    return {
      name: 'central_records',
      run: async (state) => {
        const admin = state.admin;
        if (!admin) throw new Error('registration without admin');
        try {
          await prisma.$transaction(async (tx) => {
            const company = await tx.company.create({ data: { name: state.companyName } });
            await tx.clinic.create({ data: { ...clinicRecord(state), companyId: company.id } });
            const user = await tx.user.create({
              data: {
                email: admin.email,
                passwordHash: state.passwordHash,
                firstName: admin.firstName,
                lastName: admin.lastName,
                phone: state.phone,
                role: 'CLINIC_ADMIN',
                clinicId: state.clinicId,
              },
            });
            admin.userId = user.id;
            // Hybrid: the job that finishes the work exists from the moment the records do.
            if (state.hybrid) {
              await addJob(
                tx,
                'provision_clinic',
                { clinicId: state.clinicId, attempt: 2 },
                {
                  jobKey: jobKey(state.clinicId),
                  runAt: new Date(Date.now() + CRASH_FALLBACK_MS),
                  maxAttempts: 1,
                },
              );
            }
          });
        } catch (error) {
          if ((error as { code?: string }).code === 'P2002') throw new EmailTakenError();
          throw error;
        }
        return undefined;
      },
      undo: async (state) => {
        await prisma.$transaction(async (tx) => {
          const clinic = await tx.clinic.findUnique({
            where: { id: state.clinicId },
            select: { companyId: true },
          });
          // Cascades to the clinic, its users and their tokens.
          if (clinic) await tx.company.delete({ where: { id: clinic.companyId } });
          await tx.$executeRaw`SELECT graphile_worker.remove_job(${jobKey(state.clinicId)})`;
        });
      },
    };
  }

  private remainingSteps(): SagaStep<RegistrationState>[] {
    const { provisioning } = this.deps;
    return [
      this.subdomainStep(),
      ...provisioning.databaseSteps(),
      this.dnsStep(),
      this.sslStep(),
      this.commitStep(),
      this.verificationEmailStep(),
    ];
  }

  /**
   * Replaces the provisional `name-1a2b3c4d` subdomain with one from the shared allocator
   * (modules/subdomains): `name`, or `name-2`… when taken by a clinic or an onboarding. A re-run
   * (hybrid resume) keeps the name reserved the first time.
   */
  private subdomainStep(): SagaStep<RegistrationState> {
    const { prisma } = this.deps;
    return {
      name: 'subdomain',
      run: async (state) => {
        const subdomain = await prisma.$transaction(async (tx) => {
          const name =
            (await clinicSubdomain(tx, state.clinicId)) ??
            (await reserveSubdomain(tx, preferredSubdomain(state.clinicName), { clinicId: state.clinicId }));
          await tx.clinic.update({ where: { id: state.clinicId }, data: { subdomain: name } });
          return name;
        });
        return { note: `reserved ${subdomain}` };
      },
      // No undo of its own: the reservation belongs to the clinic row and goes with it
      // (central_records' undo, deleteClinic); a FAILED clinic keeps its name for a retry.
    };
  }

  /** The clinic's name: `<subdomain>.<BASE_DOMAIN>`, read back since the subdomain step may change it. */
  private async fqdnOf(clinicId: string): Promise<string | undefined> {
    const clinic = await this.deps.prisma.clinic.findUnique({
      where: { id: clinicId },
      select: { subdomain: true },
    });
    return clinic ? clinicFqdn(clinic.subdomain, this.deps.config.baseDomain) : undefined;
  }

  /** Points the clinic's subdomain at the ingress (DNS_PROVIDER). */
  private dnsStep(): SagaStep<RegistrationState> {
    const { dns } = this.deps;
    return {
      name: 'dns',
      run: async (state) => {
        const fqdn = await this.fqdnOf(state.clinicId);
        if (!fqdn) throw new Error('clinic record missing');
        const records = await dns.publishSubdomain(fqdn);
        return { note: `${fqdn} → ${records.map((record) => `${record.type} ${record.value}`).join(', ')}` };
      },
      undo: async (state) => {
        const fqdn = await this.fqdnOf(state.clinicId);
        if (fqdn) await dns.unpublishSubdomain(fqdn);
      },
    };
  }

  /** A certificate for the clinic's subdomain (CERT_PROVIDER). */
  private sslStep(): SagaStep<RegistrationState> {
    const { certificates } = this.deps;
    return {
      name: 'ssl',
      run: async (state) => {
        const fqdn = await this.fqdnOf(state.clinicId);
        if (!fqdn) throw new Error('clinic record missing');
        const certificate = await certificates.ensureCertificate(fqdn);
        return { note: `${certificates.kind} certificate ${certificate.serialNumber} for ${fqdn}` };
      },
      undo: async (state) => {
        const fqdn = await this.fqdnOf(state.clinicId);
        if (fqdn) await certificates.revokeCertificate(fqdn);
      },
    };
  }

  /** The point of no return: READY, the verification token and its e-mail, in one transaction. */
  private commitStep(): SagaStep<RegistrationState> {
    const { prisma, config } = this.deps;
    return {
      name: 'commit',
      run: async (state) => {
        const admin = state.admin;
        if (!admin?.userId) throw new Error('commit without admin user');
        const userId = admin.userId;
        await prisma.$transaction(async (tx) => {
          await tx.clinic.update({ where: { id: state.clinicId }, data: { status: 'READY' } });
          await this.deps.provisioning.ledger.settle(tx, state.clinicId);
          // The admin registered themselves: they are the actor of their clinic's creation.
          await tx.auditLog.create({
            data: {
              action: 'registration.completed',
              actorId: userId,
              clinicId: state.clinicId,
              targetType: 'clinic',
              targetId: state.clinicId,
              data: { clinicName: state.clinicName, mode: state.hybrid ? 'hybrid' : 'strict' },
            },
          });
          await issueEmailVerification(
            tx,
            this.deps.config,
            { id: userId, email: admin.email, firstName: admin.firstName },
            state.clinicName,
          );
          await tx.$executeRaw`SELECT graphile_worker.remove_job(${jobKey(state.clinicId)})`;
        });
        void config;
        return undefined;
      },
    };
  }

  private verificationEmailStep(): SagaStep<RegistrationState> {
    const { prisma } = this.deps;
    return {
      name: 'verification_email',
      afterCommit: true,
      run: async (state) => {
        const queued = await prisma.mailOutbox.count({
          where: { toAddress: state.admin?.email ?? '', kind: 'email_verification' },
        });
        if (queued === 0) throw new Error('verification e-mail missing from the outbox');
        return { note: 'queued for delivery' };
      },
    };
  }
}

/** The state the registration steps work on, for a clinic that exists (a resume, an undo). */
function registrationState(
  clinic: { id: string; name: string; country: string; databaseName: string; databaseRole: string },
  admin:
    | { id: string; firstName: string; lastName: string; email: string | null; phone: string | null }
    | undefined,
  server: ClinicServer,
  hybrid: boolean,
): RegistrationState {
  return {
    clinicId: clinic.id,
    clinicName: clinic.name,
    country: clinic.country,
    companyName: clinic.name,
    admin: admin
      ? { userId: admin.id, firstName: admin.firstName, lastName: admin.lastName, email: admin.email ?? '' }
      : null,
    server,
    databaseName: clinic.databaseName,
    roleName: clinic.databaseRole,
    // Only central_records uses it, and it never runs again for an existing clinic.
    passwordHash: '',
    phone: admin?.phone ?? null,
    hybrid,
  };
}
