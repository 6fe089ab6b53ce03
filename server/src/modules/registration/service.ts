/**
 * Clinic registration: validates, then runs one provisioning saga — central records, subdomain,
 * the clinic database, DNS, certificate, commit, verification e-mail. Strict mode undoes
 * everything on any failure; hybrid mode turns a transient failure into a background job
 * (up to 3 attempts in all) that was enqueued with the central records, so even a crash right
 * after them cannot strand the clinic.
 */
import { randomUUID } from 'node:crypto';
import type { CentralPrisma } from '../../db/database.js';
import { isUniqueViolation, queryRows } from '../../db/raw.js';
import type { Config } from '../../env.js';
import { Prisma } from '../../generated/central/client.js';
import { addJob, removeJob } from '../../jobs/index.js';
import { type CounterStore, RateLimit, releaseAll, takeAll } from '../../limits/counters.js';
import type { Logger } from '../../logger.js';
import { auditSql, clinicAuditEntry, recordClinicAudit } from '../audit/record.js';
import { hashPassword } from '../auth/passwords.js';
import type { CertificateIssuer } from '../certificates/issuer.js';
import { type Acceptance, acceptancesSql } from '../consents/service.js';
import type { DnsProvider } from '../dns/provider.js';
import { type CommittedMail, enqueueMail } from '../mail/service.js';
import {
  type AuditActor,
  clinicSubject,
  ProvisioningFailedError,
  type ProvisioningService,
  type ProvisionState,
  type RegisterHooks,
  type RunResult,
  type RunSubject,
  ServerUnreachableError,
} from '../provisioning/index.js';
import { issueEmailVerification } from '../users/email-verification.js';
import { EmailTakenError } from '../users/errors.js';
import { isTransient } from './transient.js';
import type { RegisterClinicInput } from './validation.js';

/** The unique indexes of `users` an admin's insert can violate (prisma/central migrations). */
const USER_UNIQUE_INDEXES = ['users_email_key', 'users_phone_key'];

/** Attempts in all, the synchronous one included (hybrid mode). */
export const MAX_ATTEMPTS = 3;
/** Hybrid mode: when the synchronous attempt neither finishes nor reschedules (a crash), the job runs after this. */
const CRASH_FALLBACK_MS = 5 * 60_000;

export type RegistrationStatus = 'READY' | 'PENDING';

interface RegistrationState extends ProvisionState {
  /** The admin's password hash as central_records writes it with the user (null: written at commit). */
  passwordHash: string | null;
  /**
   * Strict mode: the hash on its way, computed while the run makes the clinic's database and
   * written at commit, with READY (decision 079). Null when central_records wrote it (hybrid: a
   * later attempt must find it) and on a resume.
   */
  hashing: Promise<string> | null;
  phone: string | null;
  hybrid: boolean;
  /** The documents the admin accepted, recorded with the account (central_records only). */
  acceptances: Acceptance[];
  ip: string | null;
  /** The verification mail the commit staged, sent once the run has ended READY. */
  verificationMailId?: string;
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
  /** Sends the verification mail the commit staged, once it has committed (docs/decisions/075). */
  committedMail: Pick<CommittedMail, 'send'>;
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
   *   Also when no identified clinic database server is left, saying so (decision 086).
   */
  async register(
    input: RegisterClinicInput,
    meta: { ip: string | null; acceptances: Acceptance[] },
  ): Promise<Registered> {
    const address = meta.ip ?? 'unknown';
    const limits: [RateLimit, string][] = [
      [this.perAddress, address],
      [this.overall, 'all'],
    ];
    await takeAll(limits);
    try {
      return await this.registerCounted(input, meta);
    } catch (error) {
      // A failure on our side is not the caller's attempt (it may retry at once).
      if (error instanceof ProvisioningFailedError) {
        await releaseAll(limits);
      }
      throw error;
    }
  }

  private async registerCounted(
    input: RegisterClinicInput,
    meta: { ip: string | null; acceptances: Acceptance[] },
  ): Promise<Registered> {
    const { prisma, provisioning, config } = this.deps;
    // Fast path; the unique index decides races (central_records maps its violation).
    // Through pg beside Prisma's engine (db/raw.ts, decision 070).
    const taken = await queryRows(
      prisma,
      Prisma.sql`SELECT 1 FROM users WHERE email = ${input.adminEmail}::text`,
    );
    if (taken.length > 0) {
      throw new EmailTakenError();
    }
    const hybrid = config.registrationMode === 'hybrid';
    let base: ProvisionState;
    try {
      base = await provisioning.newState({
        clinicName: input.clinicName,
        country: input.country,
        admin: {
          userId: null,
          firstName: input.adminFirstName,
          lastName: input.adminLastName,
          email: input.adminEmail,
        },
      });
    } catch (error) {
      // No identified clinic server to place it on (decision 086), e.g. the only one found to
      // answer as another cluster by a registration of the same burst: refused like that one, by a
      // run failed at its first step, nothing made.
      if (!(error instanceof ServerUnreachableError)) throw error;
      const subject = clinicSubject(randomUUID(), input.clinicName);
      throw await this.failure(
        subject,
        await provisioning.refuse('REGISTER', subject, 'central_records', error),
      );
    }
    // Strict: the hash runs beside the run's first steps, off the response's critical path; a run
    // that fails before commit leaves it unread (hence the empty handler).
    const hashing = hashPassword(input.adminPassword);
    hashing.catch(() => undefined);
    const state: RegistrationState = {
      ...base,
      passwordHash: hybrid ? await hashing : null,
      hashing: hybrid ? null : hashing,
      phone: input.adminPhone ?? null,
      hybrid,
      acceptances: meta.acceptances,
      ip: meta.ip,
    };
    const plan = provisioning.plans.register(this.hooks(), {
      // Only once the central records exist is there something to resume.
      suspendOn: (error, step) => hybrid && step !== 'central_records' && isTransient(error),
    });
    const result = await provisioning.run(plan, clinicSubject(state.clinicId, state.clinicName), state);
    const userId = state.admin?.userId as string;
    if (result.ok) {
      this.sendVerification(state);
      return { clinicId: state.clinicId, userId, status: 'READY' };
    }
    if (result.error instanceof EmailTakenError) throw result.error;
    if (result.suspended) {
      await prisma.$transaction(async (tx) => {
        await tx.clinic.update({ where: { id: state.clinicId }, data: { status: 'PENDING' } });
        await this.scheduleAttempt(tx, state.clinicId, 2);
      });
      return { clinicId: state.clinicId, userId, status: 'PENDING' };
    }
    throw await this.failure(clinicSubject(state.clinicId, state.clinicName), result);
  }

  /** A registration's failed run, audited, as the error its caller gets. */
  private async failure(
    subject: RunSubject,
    result: Extract<RunResult, { ok: false }>,
  ): Promise<ProvisioningFailedError> {
    // The clinic is rolled back; the entry keeps what was attempted (the "registration." filter).
    await recordClinicAudit(this.deps.prisma, 'registration.failed', subject.id, {
      data: {
        clinicName: subject.name,
        step: result.failedStep,
        runId: result.runId,
        reason: result.error.message.slice(0, 300),
      },
    }).catch((error: unknown) => this.deps.logger.warn({ err: error }, 'failed registration not audited'));
    // No identified clinic server left (decision 086): said as such, nothing kept.
    const reason =
      result.error instanceof ServerUnreachableError
        ? 'No identified clinic database server is available right now.'
        : undefined;
    return new ProvisioningFailedError(result.failedStep, result.runId, result.rolledBack, reason);
  }

  /** The `provision_clinic` job: the next attempt of a suspended registration. */
  async continueRegistration(clinicId: string, attempt: number): Promise<void> {
    const { prisma, provisioning, logger } = this.deps;
    const clinic = await prisma.clinic.findUnique({ where: { id: clinicId }, select: { status: true } });
    if (!clinic || clinic.status === 'READY' || clinic.status === 'FAILED') return; // nothing left to do
    const base = await provisioning.stateOf(clinicId);
    if (!base?.admin) {
      logger.error({ clinicId }, 'pending clinic without admin or known server; giving up');
      await this.giveUp(clinicId, attempt, 'clinic admin or database server missing');
      return;
    }
    const state = registrationState(base, true);
    const last = attempt >= MAX_ATTEMPTS;
    const plan = provisioning.plans.register(this.hooks(), {
      resume: true,
      // Before the last attempt a failure keeps what exists for the next one; the last undoes.
      suspendOn: () => !last,
    });
    const result = await provisioning.run(plan, clinicSubject(clinicId, state.clinicName), state, {
      attempt,
    });
    if (result.ok) {
      this.sendVerification(state);
      return;
    }
    if (!last) {
      await this.scheduleAttempt(prisma, clinicId, attempt + 1);
      return;
    }
    await this.giveUp(clinicId, attempt, result.error.message);
  }

  /**
   * The verification mail, once the run that committed it has ended well. A run that ends
   * otherwise after its commit (never: commit is the last step), a takeover of an abandoned run or
   * a crash here leave the staged row to the sweep's job after the grace (mail/after-commit.ts).
   */
  private sendVerification(state: RegistrationState): void {
    if (state.verificationMailId) this.deps.committedMail.send(state.verificationMailId);
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
      await recordClinicAudit(tx, 'registration.failed', clinicId, {
        data: { attempt, reason: reason.slice(0, 300), alerted: recipients.length },
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
      await recordClinicAudit(tx, 'clinic.retry_provisioning', clinicId, {
        actor,
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
      const base = await provisioning.stateOf(id);
      if (!base) {
        logger.error({ clinicId: id }, 'clinic or its database server missing; not undone');
        continue;
      }
      // A failed step leaves the rest for the next pass (every step of the plan is idempotent).
      const result = await provisioning.run(this.expiryPlan(), clinicSubject(id, base.clinicName), base);
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

  /**
   * The registration's undo as a DELETE run (provisioning's delete plan): certificate, DNS,
   * database and role quarantined (an unverified clinic may already hold data, decision 040),
   * then its central records, which frees its e-mail and subdomain.
   */
  private expiryPlan() {
    const { provisioning, config } = this.deps;
    return provisioning.plans.delete<ProvisionState>({
      reason: 'unverified registration expired',
      retentionSeconds: config.clinicTrashRetentionSeconds,
      finish: {
        step: 'central_records',
        note: 'e-mail and subdomain released',
        apply: async (tx, state) => {
          // Cascades to the clinic, its users and their tokens.
          await tx.execute(
            Prisma.sql`DELETE FROM companies WHERE id = (SELECT company_id FROM clinics WHERE id = ${state.clinicId}::uuid)`,
          );
          await removeJob(tx, jobKey(state.clinicId));
          await tx.execute(
            auditSql(
              clinicAuditEntry('registration.expired', state.clinicId, {
                data: { ttlSeconds: config.unverifiedClinicTtlSeconds },
              }),
            ),
          );
        },
      },
    });
  }

  /**
   * What registration adds to the engine's steps: the admin user (and the hybrid retry job)
   * with the central records; at commit, the audit entry and the verification e-mail.
   */
  private hooks(): RegisterHooks<RegistrationState> {
    return {
      centralRecords: {
        run: async (tx, state) => {
          const admin = state.admin;
          if (!admin) throw new Error('registration without admin');
          try {
            // The user and its acceptances in one statement (the consents need only its id).
            const [user] = await tx.query<{ id: string }>(Prisma.sql`
              WITH u AS (
                INSERT INTO users (email, password_hash, first_name, last_name, phone, role, clinic_id)
                VALUES (${admin.email}::text, ${state.passwordHash}::text, ${admin.firstName}::text,
                  ${admin.lastName}::text, ${state.phone}::text, 'CLINIC_ADMIN', ${state.clinicId}::uuid)
                RETURNING id),
              consents AS (${acceptancesSql(Prisma.sql`(SELECT id FROM u)`, state.acceptances, state.ip)})
              SELECT id::text FROM u`);
            if (!user) throw new Error('admin user not inserted');
            admin.userId = user.id;
          } catch (error) {
            // The unique index decides races between registrations of one e-mail. The phone's
            // index answered the same before pg (any unique violation here did), and still does:
            // saying which of the two is taken is the fast path's job, not the race's.
            if (USER_UNIQUE_INDEXES.some((index) => isUniqueViolation(error, index)))
              throw new EmailTakenError();
            throw error;
          }
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
        },
        undo: async (tx, state) => {
          await removeJob(tx, jobKey(state.clinicId));
        },
      },
      commit: {
        prepare: async (state) => {
          if (state.hashing) state.passwordHash = await state.hashing;
        },
        run: async (tx, state) => {
          const admin = state.admin;
          if (!admin?.userId) throw new Error('commit without admin user');
          // The admin registered themselves: they are the actor of their clinic's creation.
          const completed = auditSql(
            clinicAuditEntry('registration.completed', state.clinicId, {
              actor: { userId: admin.userId },
              data: { clinicName: state.clinicName, mode: state.hybrid ? 'hybrid' : 'strict' },
            }),
          );
          // Strict: the password the user row waited for, in the same statement (prepare awaited it).
          await tx.execute(
            state.hashing
              ? Prisma.sql`WITH password AS (
                  UPDATE users SET password_hash = ${state.passwordHash}::text WHERE id = ${admin.userId}::uuid)
                ${completed}`
              : completed,
          );
          const { outboxId } = await issueEmailVerification(
            tx,
            this.deps.config,
            { id: admin.userId, email: admin.email, firstName: admin.firstName },
            state.clinicName,
          );
          state.verificationMailId = outboxId;
          await removeJob(tx, jobKey(state.clinicId));
        },
      },
    };
  }
}

/** The state the registration's hooks work on, for a clinic that exists (a resume). */
function registrationState(base: ProvisionState, hybrid: boolean): RegistrationState {
  // passwordHash, phone and acceptances serve central_records only, which never runs again for an
  // existing clinic; its user has its hash already.
  return { ...base, passwordHash: null, hashing: null, phone: null, hybrid, acceptances: [], ip: null };
}
