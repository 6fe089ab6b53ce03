/**
 * The provisioning engine: creates, checks, repairs, upgrades and deletes clinic databases.
 * Other modules use what provisioning/index.ts exports.
 */

import type { CentralPrisma, ClinicServer, Databases } from '../../db/database.js';
import { schemaVersion } from '../../db/migrator.js';
import { queryRows } from '../../db/raw.js';
import type { Config } from '../../env.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import type { ClinicStatus, ProvisioningRunKind } from '../../generated/central/enums.js';
import { isUuid } from '../../ids.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import {
  type AuditAction,
  type AuditActor,
  auditSql,
  clinicAuditEntry,
  recordAudit,
  recordClinicAudit,
} from '../audit/record.js';
import type { CertificateIssuer } from '../certificates/issuer.js';
import { clinicFqdn, type DnsProvider } from '../dns/provider.js';
import { ClinicHealthMonitor, type ClinicsHealthReport } from '../health/clinics.js';
import { ACCEPTED_ACTION, enqueueAlerts, superAdminAddresses } from './alerts.js';
import { ClinicClientCache } from './clinic-clients.js';
import { clinicSubject, type ProvisioningEvent, type RunSubject } from './engine/events.js';
import { type DeletePlanOptions, deletePlan } from './engine/plans/delete.js';
import { type OnboardHooks, onboardPlan } from './engine/plans/onboard.js';
import type { Plan } from './engine/plans/plan.js';
import { type RegisterHooks, registerPlan } from './engine/plans/register.js';
import { type RepairState, repairPlan } from './engine/plans/repair.js';
import { restorePlan } from './engine/plans/restore.js';
import { type RunResult, runSteps, type Step } from './engine/runner.js';
import {
  type ClinicAdmin,
  existingClinicState,
  newProvisionState,
  type ProvisionState,
  type StepDeps,
} from './engine/state.js';
import { createDatabaseStep } from './engine/steps/create-database.js';
import { migrateDatabaseStep } from './engine/steps/migrate-database.js';
import { seedProviderStep } from './engine/steps/seed-provider.js';
import { verifyDatabaseStep } from './engine/steps/verify-database.js';
import { ClinicBusyError, ProvisioningFailedError, ServerUnreachableError } from './errors.js';
import { FaultInjector } from './faults.js';
import {
  CLINIC_RECORD_COLUMNS,
  type ClinicHealth,
  type ClinicRecord,
  clinicPassword,
  clinicRoleUrl,
  type IntegrityContext,
} from './integrity.js';
import { Ledger } from './ledger.js';
import { clinicSchemaShape } from './schema-shape.js';
import type { ProvisioningStepName } from './step-names.js';
import { WarmPool } from './warm-pool.js';

export type { ClinicsHealthReport } from '../health/clinics.js';
export type { ProvisioningEvent } from './engine/events.js';
export { ProvisioningFailedError } from './errors.js';
export type { ClinicHealth, DbStatus } from './integrity.js';

export interface RepairResult {
  before: ClinicHealth;
  after: ClinicHealth;
  actions: string[];
  alreadyHealthy: boolean;
  /**
   * The clinic's database, which once held data (the clinic was READY), was gone with no copy in
   * quarantine: repair created an empty one. Audited (`clinic.data_lost`) and alerted.
   */
  dataLost: boolean;
}

export type { AuditActor } from '../audit/record.js';

const NO_ACTOR: AuditActor = { userId: null };

/** Audit action of a missing database's first sighting; a later repair or restore closes the incident. */
const MISSING_ACTION: AuditAction = 'clinic.database_missing';

/** What a new clinic's run starts from (newState): registration gives it. */
export interface NewClinicInput {
  clinicName: string;
  country: string;
  companyName?: string;
  admin?: ClinicAdmin | null;
}

export interface ProvisioningDeps {
  config: Config;
  logger: Logger;
  db: Databases;
  metrics: Metrics;
  publishProgress(event: ProvisioningEvent): void;
  publishHealth(health: ClinicHealth): void;
  /** Deleting a clinic unpublishes its subdomain; absent in scripts that never delete clinics. */
  dns?: DnsProvider;
  /** Deleting a clinic revokes its certificate; absent in scripts that never delete clinics. */
  certificates?: CertificateIssuer;
}

export class ProvisioningService {
  readonly faults: FaultInjector;
  readonly pool: WarmPool;
  readonly clients: ClinicClientCache;
  readonly integrity: IntegrityContext;
  readonly ledger: Ledger;
  private readonly prisma: CentralPrisma;
  private readonly servers: Map<string, ClinicServer>;
  private readonly stepDeps: StepDeps;
  /** Set by `start`: scripts that never start the service make no spares. */
  private started = false;
  /** Clinic health in two tiers, recorded centrally (modules/health, docs/decisions/051). */
  readonly health: ClinicHealthMonitor;

  constructor(private readonly deps: ProvisioningDeps) {
    const { config, db } = deps;
    this.prisma = db.prisma;
    this.servers = db.servers.byId;
    this.faults = new FaultInjector(config.env !== 'production', config.faultInjection);
    this.ledger = new Ledger({
      prisma: this.prisma,
      logger: deps.logger,
      servers: this.servers,
      names: db.servers.names,
      trashRetentionSeconds: config.clinicTrashRetentionSeconds,
      deleteRetentionSeconds: config.clinicDeleteRetentionSeconds,
    });
    this.integrity = {
      servers: this.servers,
      unreachable: db.servers.unreachable,
      names: db.servers.names,
      shape: clinicSchemaShape(db.clinicMigrations),
      version: db.clinicServers[0]?.template.version ?? schemaVersion(db.clinicMigrations),
      encryptionKey: config.encryptionKey,
    };
    this.pool = new WarmPool(config.clinicPoolSize, deps.logger);
    this.clients = new ClinicClientCache({
      logger: deps.logger,
      resolve: async (clinicId) => {
        const clinic = await this.findClinic(clinicId);
        const server = this.serverOf(clinic);
        const password = clinicPassword(clinic, config.encryptionKey);
        if (!password) throw new Error('clinic role password unavailable');
        return clinicRoleUrl(server.url, clinic.databaseName, clinic.databaseRole, password);
      },
    });
    this.stepDeps = {
      prisma: this.prisma,
      pool: this.pool,
      clients: this.clients,
      clinicMigrations: db.clinicMigrations,
      integrity: this.integrity,
      encryptionKey: config.encryptionKey,
      deploymentId: db.deploymentId,
      ledger: this.ledger,
      placeClinic: () => this.placeClinic(),
      baseDomain: config.baseDomain,
      dns: deps.dns,
      certificates: deps.certificates,
    };
    this.health = new ClinicHealthMonitor({
      prisma: this.prisma,
      pool: db.pool,
      logger: deps.logger,
      metrics: deps.metrics,
      integrity: this.integrity,
      concurrency: config.clinicHealthConcurrency,
      intervalSeconds: config.clinicHealthIntervalSeconds,
      deepPeriodSeconds: config.clinicDeepCheckPeriodSeconds,
      refreshServers: () => this.refreshServers(),
      publish: deps.publishHealth,
      onMissing: (health) => this.reportMissingDatabase(health),
    });
  }

  /** This deployment's identity, tagged on every clinic database and role it creates. */
  get deploymentId(): string {
    return this.deps.db.deploymentId;
  }

  /**
   * Fills the warm pools and starts the periodic health sweep. Clinic databases left behind by a
   * new clinic migration are upgraded by a rollout (modules/rollouts, docs/decisions/047).
   */
  start(): void {
    this.started = true;
    for (const server of this.servers.values()) this.pool.refillInBackground(server);
    this.health.start();
  }

  async close(): Promise<void> {
    await this.health.close();
    await this.pool.close();
    await this.clients.close();
  }

  /**
   * The configured server with the fewest clinics (ties: the first listed), among those
   * identified now: one whose address answers as another cluster is out of `servers` (decision
   * 086). With none left, the servers are tried again once (a cost only then).
   * @throws ServerUnreachableError when no identified server is left
   */
  async placeClinic(): Promise<ClinicServer> {
    if (this.servers.size === 0) await this.refreshServers();
    // Through pg beside Prisma's engine (db/raw.ts, decision 070): every registration asks.
    const counts = await queryRows<{ server: string; clinics: number }>(
      this.prisma,
      Prisma.sql`SELECT database_server_id AS server, count(*)::int AS clinics FROM clinics GROUP BY 1`,
    );
    const load = new Map(counts.map((row) => [row.server, row.clinics]));
    let best: ClinicServer | undefined;
    for (const server of this.servers.values()) {
      if (!best || (load.get(server.id) ?? 0) < (load.get(best.id) ?? 0)) best = server;
    }
    if (!best) {
      // The reasons name servers and addresses: logged, not told to a public registration.
      this.deps.logger.error(
        { unreachable: [...this.deps.db.servers.unreachable.values()].map((server) => server.reason) },
        'no identified clinic database server to place a clinic on',
      );
      throw new ServerUnreachableError(
        'No identified clinic database server is available right now; nothing was created. Please try again later.',
      );
    }
    return best;
  }

  /** The database steps of a registration, in order (engine/steps/). */
  databaseSteps(): Step<ProvisionState>[] {
    // create_database … seed_provider are idempotent, so a retry simply runs them all again.
    return [
      createDatabaseStep(this.stepDeps),
      migrateDatabaseStep(this.stepDeps),
      verifyDatabaseStep(this.stepDeps),
      seedProviderStep(),
    ];
  }

  /** The plans of the engine's run kinds, bound to this service's steps (engine/plans/). */
  readonly plans = {
    register: <S extends ProvisionState>(
      hooks: RegisterHooks<S>,
      options?: Parameters<typeof registerPlan<S>>[2],
    ): Plan<S> => registerPlan(this.stepDeps, hooks, options),
    onboard: <S>(hooks: OnboardHooks<S>): Plan<S> => onboardPlan(this.stepDeps, hooks),
    delete: <S extends ProvisionState>(options: DeletePlanOptions<S>): Plan<S> =>
      deletePlan(this.stepDeps, options),
  };

  /**
   * A run that fails at its first step, `step`, with `error`, before anything is made: a request
   * refused before its state exists (no server to place a clinic on, decision 086) still has the
   * run its caller is told of and the console shows.
   */
  refuse(kind: ProvisioningRunKind, subject: RunSubject, step: ProvisioningStepName, error: Error) {
    const refused: Step<undefined> = { name: step, run: () => Promise.reject(error) };
    return this.run({ kind, steps: [refused] }, subject, undefined) as Promise<
      Extract<RunResult, { ok: false }>
    >;
  }

  async newState(input: NewClinicInput): Promise<ProvisionState> {
    return newProvisionState({ ...input, server: await this.placeClinic() });
  }

  /**
   * The state of an existing clinic's runs, with its first clinic admin; undefined when the
   * clinic, or its database server, is not known here.
   */
  async stateOf(clinicId: string): Promise<ProvisionState | undefined> {
    const clinic = await this.prisma.clinic.findUnique({
      where: { id: clinicId },
      include: { users: { where: { role: 'CLINIC_ADMIN' }, orderBy: { createdAt: 'asc' }, take: 1 } },
    });
    const server = clinic && this.servers.get(clinic.databaseServerId);
    if (!clinic || !server) return undefined;
    return existingClinicState(clinic, clinic.users[0], server);
  }

  /** Runs `plan` on `subject` as one recorded, observable, leased run (engine/runner.ts). */
  async run<S>(
    plan: Plan<S>,
    subject: RunSubject,
    state: S,
    options: { attempt?: number } = {},
  ): Promise<RunResult> {
    const { kind } = plan;
    const inProgress = this.deps.metrics.provisioningRunsInProgress;
    inProgress.inc();
    // A warm spare claimed by the run is replaced once the run is over, not during it.
    const result = await this.pool
      .deferRefills(() =>
        runSteps(
          {
            prisma: this.prisma,
            logger: this.deps.logger,
            faults: this.faults,
            publish: this.deps.publishProgress,
            observeStep: (step, outcome, seconds) =>
              this.deps.metrics.provisioningStepDuration.observe({ step, outcome }, seconds),
            leaseMs: this.deps.config.provisioningLeaseSeconds * 1000,
          },
          { kind, subject, steps: plan.steps, state, suspendOn: plan.suspendOn, ...options },
        ),
      )
      .finally(() => inProgress.dec());
    this.deps.metrics.provisioningRuns.inc({
      kind,
      outcome: result.ok ? 'success' : result.suspended ? 'suspended' : 'failure',
    });
    return result;
  }

  injectFault(step: ProvisioningStepName, times: number): Record<string, number> {
    this.faults.inject(step, times);
    return this.faults.pending();
  }

  /** Checks one clinic now, deeply, and records it (modules/health). */
  async checkClinic(clinicId: string): Promise<ClinicHealth> {
    const clinic = await this.findClinic(clinicId);
    if (!this.servers.has(clinic.databaseServerId)) await this.refreshServers();
    return this.health.checkClinic(clinic);
  }

  /** Checks every clinic now, both tiers (modules/health); the background sweep does not wait for this. */
  clinicsHealth(): Promise<ClinicsHealthReport> {
    return this.health.checkAll();
  }

  /**
   * Brings a broken clinic back: recreates a missing database from the template, restores the
   * role and its grants, applies missing migrations, re-creates dropped tables and re-seeds the
   * provider. Idempotent; concurrent repairs of one clinic are serialised.
   */
  async repairClinic(clinicId: string, actor: AuditActor = NO_ACTOR): Promise<RepairResult> {
    // A deleted clinic's database waits in quarantine for restoreClinic; repairing it would bring
    // the database back under a clinic that stays DELETED.
    const { status } = await this.findClinic(clinicId);
    if (status === 'DELETED' || status === 'DELETING')
      throw new ConflictError(`The clinic is ${status}: restoreClinic brings it back.`);
    await this.refuseWhileMoving(clinicId);
    const before = await this.checkClinic(clinicId);
    if (before.dbStatus === 'HEALTHY')
      return { before, after: before, actions: [], alreadyHealthy: true, dataLost: false };
    if (before.dbStatus === 'PROVISIONING')
      throw new ClinicBusyError('The clinic is still being provisioned');

    const clinic = await this.findClinic(clinicId);
    this.serverOf(clinic);
    const base = await this.stateOf(clinicId);
    if (!base) throw new NotFoundError('clinic');
    const state: RepairState = { ...base, status: clinic.status, before, actions: [], dataLost: false };
    const plan = repairPlan(this.stepDeps, {
      check: (id) => this.checkClinic(id),
      commit: async (tx, state, { runId }) => {
        const after = state.after ?? before;
        const { actions, dataLost } = state;
        // The repair's central effects, its record and its alerts commit together.
        if (clinic.status === 'FAILED') await tx.execute(clinicStatusSql(clinic.id, 'READY'));
        await tx.execute(
          auditSql(
            clinicAuditEntry('clinic.repair', clinicId, {
              actor,
              data: { actions, before: before.dbStatus, after: after.dbStatus, dataLost, runId },
            }),
          ),
        );
        if (!dataLost) return;
        await tx.execute(
          auditSql(
            clinicAuditEntry('clinic.data_lost', clinicId, {
              actor,
              data: { databaseName: clinic.databaseName, runId },
            }),
          ),
        );
        await enqueueAlerts(
          tx,
          await superAdminAddresses(this.prisma, this.deps.config.adminEmail),
          {
            kind: 'clinic_data_lost',
            subject: `Onramp: the data of clinic "${clinic.name}" is lost`,
            text: [
              `The database of clinic "${clinic.name}" (${clinic.id}) was missing, with no copy in quarantine.`,
              `A repair ${actor.userId ? `by user ${actor.userId}` : 'by Onramp'} created an empty database in its place: the clinic's earlier data is gone.`,
              'Restore it from a backup if one exists.',
            ].join('\n\n'),
          },
          this.deps.config.encryptionKey,
        );
      },
    });
    const result = await this.run(plan, clinicSubject(clinicId, clinic.name), state);
    if (!result.ok) throw result.error;
    const { actions, dataLost } = state;
    const after = state.after ?? (await this.checkClinic(clinicId));
    if (dataLost) this.deps.logger.error({ clinicId }, 'clinic database recreated empty: its data is lost');
    return { before, after, actions, alreadyHealthy: false, dataLost };
  }

  /**
   * A READY clinic's database is missing (seen at sign-in or by the health sweep): nothing is
   * recreated; the super-admins are alerted once per incident (until the next repair or restore).
   */
  async reportMissingDatabase(health: ClinicHealth): Promise<void> {
    const clinic = await this.findClinic(health.clinicId);
    if (clinic.status !== 'READY' || health.dbStatus !== 'MISSING') return;
    const recipients = await superAdminAddresses(this.prisma, this.deps.config.adminEmail);
    await this.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${`missing:${clinic.id}`}))`;
      const last = await tx.auditLog.findFirst({
        where: { clinicId: clinic.id, action: { in: [MISSING_ACTION, 'clinic.repair', 'clinic.restore'] } },
        orderBy: { id: 'desc' },
        select: { action: true },
      });
      if (last?.action === MISSING_ACTION) return;
      await recordClinicAudit(tx, MISSING_ACTION, clinic.id, {
        data: { databaseName: clinic.databaseName, server: health.server, errors: health.errors },
      });
      await enqueueAlerts(
        tx,
        recipients,
        {
          kind: 'clinic_database_missing',
          subject: `Onramp: the database of clinic "${clinic.name}" is missing`,
          text: [
            `The database ${clinic.databaseName} of clinic "${clinic.name}" (${clinic.id}) is missing on server ${health.server}.`,
            'Onramp changed nothing and its users cannot sign in. Restore it, or repair the clinic (repairClinic restores a quarantined copy; otherwise it creates an empty database and reports the loss).',
          ].join('\n\n'),
        },
        this.deps.config.encryptionKey,
      );
      this.deps.logger.error({ clinicId: clinic.id }, 'clinic database missing; super-admins alerted');
    });
  }

  /** Unpublishes `<subdomain>.<BASE_DOMAIN>` and revokes its certificate (idempotent). */
  async releaseSubdomain(subdomain: string): Promise<void> {
    const fqdn = clinicFqdn(subdomain, this.deps.config.baseDomain);
    await this.deps.dns?.unpublishSubdomain(fqdn);
    await this.deps.certificates?.revokeCertificate(fqdn);
  }

  /**
   * Quarantines the clinic's database and role and marks it DELETED (restorable until the
   * purge), as a DELETE run (engine/plans/delete.ts) audited with its actor. A run that fails
   * leaves the clinic DELETING and says why; what it did is kept (nothing is ever dropped here).
   */
  async deleteClinic(clinicId: string, actor: AuditActor = NO_ACTOR): Promise<void> {
    const clinic = await this.findClinic(clinicId);
    if (clinic.status === 'DELETED' || clinic.status === 'DELETING')
      throw new ConflictError(`The clinic is already ${clinic.status}.`);
    await this.refuseWhileMoving(clinicId);
    // Before any change: a clinic whose server is unreachable is refused whole, not half deleted.
    this.serverOf(clinic);
    const state = await this.stateOf(clinicId);
    if (!state) throw new NotFoundError('clinic');
    // One deletion at a time: the claim is the status change itself. Its users' sessions end
    // with it: no one of a DELETING clinic signs in any more, and one signed in before must not
    // go on acting in it until the token expires (the `sessions` triggers tell every instance).
    const claimed = await this.prisma.$transaction(async (tx) => {
      const claim = await tx.clinic.updateMany({
        where: { id: clinicId, status: { notIn: ['DELETED', 'DELETING'] } },
        data: { status: 'DELETING' },
      });
      if (claim.count > 0) {
        await tx.session.updateMany({
          where: { user: { clinicId }, revokedAt: null },
          data: { revokedAt: new Date() },
        });
      }
      return claim;
    });
    if (claimed.count === 0) throw new ConflictError('Another operation is deleting this clinic.');
    const result = await this.runDelete(clinic, state, actor);
    if (!result.ok) throw new ProvisioningFailedError(result.failedStep, result.runId, result.rolledBack);
  }

  /** The DELETE run of a clinic already claimed (DELETING); `attempt` > 1 when it resumes one. */
  private runDelete(
    clinic: ClinicRecord,
    state: ProvisionState,
    actor: AuditActor,
    attempt = 1,
    resumed: string | null = null,
  ): Promise<RunResult> {
    const clinicId = clinic.id;
    // Kept, not dropped (decision 040): quarantined for CLINIC_DELETE_RETENTION; the row stays
    // DELETED, so its users cannot sign in and its subdomain stays reserved until the purge.
    const plan = this.plans.delete<ProvisionState>({
      reason: 'clinic deleted',
      retentionSeconds: this.deps.config.clinicDeleteRetentionSeconds,
      finish: {
        step: 'commit',
        apply: async (tx, _state, { runId }) => {
          await tx.execute(clinicStatusSql(clinicId, 'DELETED'));
          await tx.execute(
            auditSql(
              clinicAuditEntry('clinic.delete', clinicId, {
                actor,
                data: { databaseName: clinic.databaseName, runId, ...(resumed ? { resumed } : {}) },
              }),
            ),
          );
        },
      },
    });
    return this.run(plan, clinicSubject(clinicId, clinic.name), state, { attempt });
  }

  /**
   * Brings a DELETED clinic back within its retention (decision 040): its quarantined database
   * and role under their own names again, the ledger entries COMMITTED, the clinic READY, its
   * subdomain published again. A RESTORE run (engine/plans/restore.ts), audited with its actor.
   * @throws NotFoundError; ConflictError when the clinic is not deleted, another restore holds
   *   it, or its retention is over (nothing left to restore); ProvisioningFailedError when a
   *   step fails (the clinic is DELETED again, and a new restore resumes).
   */
  async restoreClinic(clinicId: string, actor: AuditActor = NO_ACTOR): Promise<ClinicHealth> {
    const clinic = await this.findClinic(clinicId);
    if (clinic.status !== 'DELETED')
      throw new ConflictError(`The clinic is ${clinic.status}, not deleted: there is nothing to restore.`);
    const kept = await this.ledger.quarantinedDatabase(clinicId);
    // On the central database's clock, as the purge counts it (not this instance's).
    if (!kept || (kept.purgeAfter && kept.purgeAfter <= (await this.ledger.now())))
      throw new ConflictError(
        'The retention of this deleted clinic is over: its database cannot be restored.',
      );
    this.serverOf(clinic);
    const state = await this.stateOf(clinicId);
    if (!state) throw new NotFoundError('clinic');
    // One restore at a time: the claim is the status change itself.
    const claimed = await this.prisma.clinic.updateMany({
      where: { id: clinicId, status: 'DELETED' },
      data: { status: 'DELETING' },
    });
    if (claimed.count === 0) throw new ConflictError('Another operation is restoring this clinic.');
    const result = await this.runRestore(clinic, state, actor).catch((error: unknown) => ({
      ok: false as const,
      error,
    }));
    if (!result.ok) {
      await this.prisma.clinic.updateMany({
        where: { id: clinicId, status: 'DELETING' },
        data: { status: 'DELETED' },
      });
      if ('failedStep' in result)
        throw new ProvisioningFailedError(result.failedStep, result.runId, result.rolledBack);
      throw result.error;
    }
    return this.checkClinic(clinicId);
  }

  /** The RESTORE run of a clinic already claimed (DELETED to DELETING); `attempt` > 1 when it resumes one. */
  private runRestore(
    clinic: ClinicRecord,
    state: ProvisionState,
    actor: AuditActor,
    attempt = 1,
    resumed: string | null = null,
  ): Promise<RunResult> {
    const clinicId = clinic.id;
    const plan = restorePlan<ProvisionState>(this.stepDeps, async (tx, _state, { runId }) => {
      await tx.execute(clinicStatusSql(clinicId, 'READY'));
      await tx.execute(
        auditSql(
          clinicAuditEntry('clinic.restore', clinicId, {
            actor,
            data: { databaseName: clinic.databaseName, runId, ...(resumed ? { resumed } : {}) },
          }),
        ),
      );
    });
    return this.run(plan, clinicSubject(clinicId, clinic.name), state, { attempt });
  }

  /**
   * Takes over a run its process abandoned (its lease lapsed; the reconciler has marked it
   * FAILED), so that no clinic stays DELETING after a crash: a DELETE finishes (every step is
   * idempotent: DELETED), a RESTORE finishes (READY) or, failing, puts the clinic back to
   * DELETED, a REPAIR runs again (it starts from a fresh check). The new run is attempt + 1,
   * audited as resuming the abandoned one. Other kinds are their own module's (REGISTER: the
   * reconciler; UPGRADE: the rollout; MOVE: the moves' recovery; ONBOARDING: the onboarding).
   * @returns whether it took the run over.
   */
  async resumeAbandoned(run: {
    id: string;
    kind: string;
    clinicId: string;
    attempt: number;
  }): Promise<boolean> {
    const clinic = await this.prisma.clinic.findUnique({
      where: { id: run.clinicId },
      select: CLINIC_RECORD_COLUMNS,
    });
    if (!clinic) return false;
    const log = this.deps.logger.child({ clinicId: clinic.id, runId: run.id, kind: run.kind });
    if (run.kind === 'REPAIR') {
      if (clinic.status === 'DELETED' || clinic.status === 'DELETING') return false;
      await this.repairClinic(clinic.id);
      log.warn('abandoned repair run again');
      return true;
    }
    if ((run.kind !== 'DELETE' && run.kind !== 'RESTORE') || clinic.status !== 'DELETING') return false;
    const state = await this.stateOf(clinic.id);
    if (!state) return false;
    const attempt = run.attempt + 1;
    if (run.kind === 'DELETE') {
      const result = await this.runDelete(clinic, state, NO_ACTOR, attempt, run.id);
      log.warn({ ok: result.ok }, 'abandoned deletion resumed');
      return true;
    }
    const result = await this.runRestore(clinic, state, NO_ACTOR, attempt, run.id);
    if (!result.ok)
      await this.prisma.clinic.updateMany({
        where: { id: clinic.id, status: 'DELETING' },
        data: { status: 'DELETED' },
      });
    log.warn({ ok: result.ok }, 'abandoned restore resumed');
    return true;
  }

  /**
   * The operator's restore (`pnpm clinics:restore`): `target` is a clinic id or the trash name of
   * a quarantined database. A DELETED clinic goes through restoreClinic; a database no clinic
   * owns (a run that never committed) gets its own name back, open to its role, and its ledger
   * entries COMMITTED, so no sweep or purge touches it again.
   * @returns what was restored, for the operator.
   */
  async restoreQuarantined(target: string, actor: AuditActor = NO_ACTOR): Promise<string> {
    const entry = await this.prisma.clinicObject.findFirst({
      where: {
        kind: 'DATABASE',
        state: 'QUARANTINED',
        OR: [{ trashName: target }, ...(isUuid(target) ? [{ clinicId: target }] : [])],
      },
      orderBy: { quarantinedAt: 'desc' },
    });
    if (!entry) throw new NotFoundError('quarantined database');
    const clinic = await this.prisma.clinic.findUnique({
      where: { id: entry.clinicId },
      select: { status: true },
    });
    if (clinic?.status === 'DELETED') {
      await this.restoreClinic(entry.clinicId, actor);
      return `clinic ${entry.clinicId} restored: READY, database ${entry.name}`;
    }
    if (clinic)
      throw new ConflictError(
        `The clinic ${entry.clinicId} is ${clinic.status}; restore its database with repairClinic.`,
      );
    await this.ledger.restoreClinic(entry.clinicId);
    await recordAudit(this.prisma, {
      action: 'clinic_object.restore',
      actorId: actor.userId,
      clinicId: entry.clinicId,
      targetType: 'database',
      targetId: entry.id,
      data: { database: entry.name, trashName: entry.trashName },
    });
    return `database ${entry.name} restored (no clinic owns it; it is kept until an operator drops it)`;
  }

  /**
   * The purge (decision 040): drops what sat in quarantine past its retention, then removes the
   * central rows of every DELETED clinic whose database and role are gone now — the clinic, its
   * users and what hangs on them, its subdomain reservation, and its company when it has no other
   * clinic (as the registration's undo does). The audit log and the run records stay.
   * @returns how many objects were dropped and which clinics were removed.
   */
  async purgeDue(at?: Date): Promise<{ purged: number; clinics: string[] }> {
    const { purged, clinics } = await this.ledger.purgeDue(at);
    const removed: string[] = [];
    for (const clinicId of clinics) {
      const gone = await this.prisma.$transaction(async (tx) => {
        const clinic = await tx.clinic.findUnique({
          where: { id: clinicId },
          select: { status: true, companyId: true, databaseName: true },
        });
        if (clinic?.status !== 'DELETED') return false;
        // Of two purges at once, one removes the rows.
        if ((await tx.clinic.deleteMany({ where: { id: clinicId, status: 'DELETED' } })).count === 0)
          return false;
        if ((await tx.clinic.count({ where: { companyId: clinic.companyId } })) === 0)
          await tx.company.delete({ where: { id: clinic.companyId } });
        await recordClinicAudit(tx, 'clinic.purge', clinicId, {
          data: { databaseName: clinic.databaseName },
        });
        return true;
      });
      if (gone) removed.push(clinicId);
    }
    if (removed.length > 0)
      this.deps.logger.warn({ clinics: removed }, 'deleted clinics purged after their retention');
    return { purged, clinics: removed };
  }

  /**
   * A clinic being moved to another server (modules/moves) is neither repaired nor deleted: a
   * repair would reset the frozen role's password and let it log in on the source again.
   */
  private async refuseWhileMoving(clinicId: string): Promise<void> {
    if ((await this.prisma.clinicMove.count({ where: { clinicId, status: 'RUNNING' } })) > 0)
      throw new ClinicBusyError('The clinic is being moved to another server; try again when the move ends');
  }

  /**
   * Tries again the configured servers that did not answer (a server back after an outage, or
   * answering as itself again, decision 086). Once started, one attached here has its warm pool
   * filled now, not after the first registration placed there cloned for want of a spare.
   */
  private async refreshServers(): Promise<void> {
    const before = new Set(this.servers.keys());
    await this.deps.db.servers
      .refresh()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'clinic server refresh failed'));
    if (!this.started) return;
    for (const server of this.servers.values())
      if (!before.has(server.id)) this.pool.refillInBackground(server);
  }

  /**
   * An operator's decision to use a held clinic database server (docs/decisions/090): `target`
   * is its name or id. Clears the hold in the central record, which every instance honours at its
   * next refresh (this one at once), audited `database_server.accepted` with who asked (`by`
   * names a shell's user and command, which has no signed-in actor). Of two accepts at once, one
   * writes; the other answers CONFLICT.
   * @throws NotFoundError when no recorded server has that name or id; ConflictError when it is
   *   not held.
   */
  async acceptServer(
    target: string,
    actor: AuditActor & { by?: string } = NO_ACTOR,
  ): Promise<{ id: string; name: string }> {
    const server = await this.prisma.$transaction(async (tx) => {
      const row = await tx.databaseServer.findFirst({
        where: { OR: [{ name: target }, ...(isUuid(target) ? [{ id: target }] : [])] },
      });
      if (!row) throw new NotFoundError('database server');
      const claimed = await tx.databaseServer.updateMany({
        where: { id: row.id, heldReason: { not: null } },
        data: { heldReason: null },
      });
      if (claimed.count === 0) throw new ConflictError(`Clinic database server ${row.name} is not held`);
      await recordAudit(tx, {
        action: ACCEPTED_ACTION,
        actorId: actor.userId,
        ip: actor.ip ?? null,
        targetType: 'database_server',
        targetId: row.id,
        data: {
          server: row.name,
          address: row.address,
          heldReason: row.heldReason,
          ...(actor.by ? { by: actor.by } : {}),
        },
      });
      return { id: row.id, name: row.name };
    });
    this.deps.logger.warn({ server: server.name }, 'held clinic database server accepted by an operator');
    await this.refreshServers();
    return server;
  }

  /** A recorded server's name (its id when unknown). */
  serverName(serverId: string): string {
    return this.deps.db.servers.names.get(serverId) ?? serverId;
  }

  /** Why a clinic's server cannot be used, for errors and health. */
  private serverNote(serverId: string): string {
    const name = this.deps.db.servers.names.get(serverId) ?? serverId;
    const reason = this.deps.db.servers.unreachable.get(serverId)?.reason ?? 'not configured';
    return `database server ${name} is unreachable: ${reason}`;
  }

  private async findClinic(clinicId: string): Promise<ClinicRecord> {
    const clinic = await this.prisma.clinic.findUnique({
      where: { id: clinicId },
      select: CLINIC_RECORD_COLUMNS,
    });
    if (!clinic) throw new NotFoundError('clinic');
    return clinic;
  }

  private serverOf(clinic: Pick<ClinicRecord, 'databaseServerId'>): ClinicServer {
    const server = this.servers.get(clinic.databaseServerId);
    if (!server) throw new ServerUnreachableError(this.serverNote(clinic.databaseServerId));
    return server;
  }
}

/** A clinic's new status, for a step's transaction. */
function clinicStatusSql(clinicId: string, status: ClinicStatus): Prisma.Sql {
  return Prisma.sql`UPDATE clinics SET status = ${status}::"ClinicStatus", updated_at = now() WHERE id = ${clinicId}::uuid`;
}
