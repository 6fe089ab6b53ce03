/**
 * The provisioning engine: creates, checks, repairs, upgrades and deletes clinic databases.
 * Other modules use only this file's exports.
 */

import { mapLimit } from '../../concurrency.js';
import type { CentralPrisma, ClinicServer, Databases } from '../../db/database.js';
import { migrate, schemaVersion } from '../../db/migrator.js';
import { databaseUrl, withClient } from '../../db/sql.js';
import type { Config } from '../../env.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import type { CertificateIssuer } from '../certificates/issuer.js';
import { clinicFqdn, type DnsProvider } from '../dns/provider.js';
import { ClinicHealthMonitor, type ClinicsHealthReport } from '../health/clinics.js';
import {
  cloneDatabase,
  databaseExists,
  ensureRole,
  grantClinicRole,
  roleExists,
  tagClinicObjects,
} from './admin.js';
import { enqueueAlerts, superAdminAddresses } from './alerts.js';
import { ClinicClientCache } from './clinic-clients.js';
import { ClinicBusyError, ProvisioningFailedError, ServerUnreachableError } from './errors.js';
import { FaultInjector } from './faults.js';
import {
  type ClinicHealth,
  type ClinicRecord,
  clinicPassword,
  clinicRoleUrl,
  type IntegrityContext,
} from './integrity.js';
import { Ledger } from './ledger.js';
import { type ProvisioningEvent, runSaga, type SagaInput, type SagaResult, type SagaStep } from './saga.js';
import { clinicSchemaShape } from './schema-shape.js';
import { encryptSecret, randomPassword } from './secrets.js';
import type { ProvisioningStepName } from './step-names.js';
import {
  type ClinicAdmin,
  centralRecordsStep,
  commitStep,
  createDatabaseStep,
  migrateDatabaseStep,
  newProvisionState,
  type ProvisionState,
  type StepDeps,
  seedProviderStep,
  verifyDatabaseStep,
} from './steps.js';
import { WarmPool } from './warm-pool.js';

export { ProvisioningFailedError } from './errors.js';
export type { ClinicHealth, DbStatus } from './integrity.js';
export type { ProvisioningEvent } from './saga.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type { ClinicsHealthReport } from '../health/clinics.js';

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

/**
 * Who asked for an operation, for its audit entry: the signed-in operator (and their address),
 * or nobody (`userId: null`) when Onramp acts by itself, e.g. the repair at sign-in.
 */
export interface AuditActor {
  userId: string | null;
  ip?: string | null;
}

const NO_ACTOR: AuditActor = { userId: null };

/** Audit action of a missing database's first sighting; a later repair or restore closes the incident. */
const MISSING_ACTION = 'clinic.database_missing';

export interface MigrateClinicsReport {
  total: number;
  migrated: number;
  upToDate: number;
  failed: { clinicId: string; error: string }[];
}

export interface ProvisionClinicInput {
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

const CLINIC_RECORD = {
  id: true,
  name: true,
  subdomain: true,
  status: true,
  databaseName: true,
  databaseServerId: true,
  databaseRole: true,
  databasePasswordEnc: true,
} as const;

export class ProvisioningService {
  readonly faults: FaultInjector;
  readonly pool: WarmPool;
  readonly clients: ClinicClientCache;
  readonly integrity: IntegrityContext;
  readonly ledger: Ledger;
  private readonly prisma: CentralPrisma;
  private readonly servers: Map<string, ClinicServer>;
  private readonly stepDeps: StepDeps;
  /** Clinic health in two tiers, recorded centrally (modules/health, docs/decisions/051). */
  readonly health: ClinicHealthMonitor;

  constructor(private readonly deps: ProvisioningDeps) {
    const { config, db } = deps;
    this.prisma = db.prisma;
    this.servers = db.servers.byId;
    this.faults = new FaultInjector(config.env !== 'production', config.faultInjection);
    this.pool = new WarmPool(config.clinicPoolSize, deps.logger);
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
    for (const server of this.servers.values()) this.pool.refillInBackground(server);
    this.health.start();
  }

  async close(): Promise<void> {
    await this.health.close();
    await this.pool.close();
    await this.clients.close();
  }

  /** The configured server with the fewest clinics (ties: the first listed). */
  async placeClinic(): Promise<ClinicServer> {
    const counts = await this.prisma.clinic.groupBy({ by: ['databaseServerId'], _count: { _all: true } });
    const load = new Map(counts.map((row) => [row.databaseServerId, row._count._all]));
    let best: ClinicServer | undefined;
    for (const server of this.servers.values()) {
      if (!best || (load.get(server.id) ?? 0) < (load.get(best.id) ?? 0)) best = server;
    }
    if (!best) throw new Error('no clinic database server configured');
    return best;
  }

  /** The database steps of a registration, in order; registration adds its own around them. */
  databaseSteps(): SagaStep<ProvisionState>[] {
    // create_database … seed_provider are idempotent, so a retry simply runs them all again.
    return [
      createDatabaseStep(this.stepDeps),
      migrateDatabaseStep(this.stepDeps),
      verifyDatabaseStep(this.stepDeps),
      seedProviderStep(),
    ];
  }

  async newState(input: ProvisionClinicInput): Promise<ProvisionState> {
    return newProvisionState({ ...input, server: await this.placeClinic() });
  }

  /**
   * Provisions a clinic end to end: central records, database, verification, provider, commit.
   * @throws ProvisioningFailedError after rolling everything back.
   */
  async provisionClinic(input: ProvisionClinicInput): Promise<{ clinicId: string; runId: string }> {
    const state = await this.newState(input);
    const steps = [centralRecordsStep(this.stepDeps), ...this.databaseSteps(), commitStep(this.stepDeps)];
    const result = await this.runSaga('REGISTER', state, steps);
    if (!result.ok) throw new ProvisioningFailedError(result.failedStep, result.runId);
    return { clinicId: state.clinicId, runId: result.runId };
  }

  /** Runs provisioning steps as one recorded, observable saga (see saga.ts). */
  async runSaga<S extends ProvisionState>(
    kind: 'REGISTER' | 'REPAIR' | 'UPGRADE' | 'DELETE',
    state: S,
    steps: SagaStep<S>[],
    options: Pick<SagaInput<S>, 'attempt' | 'suspendOn'> = {},
  ): Promise<SagaResult> {
    const inProgress = this.deps.metrics.provisioningRunsInProgress;
    inProgress.inc();
    const result = await runSaga(
      {
        prisma: this.prisma,
        logger: this.deps.logger,
        faults: this.faults,
        publish: this.deps.publishProgress,
        observeStep: (step, outcome, seconds) =>
          this.deps.metrics.provisioningStepDuration.observe({ step, outcome }, seconds),
        leaseMs: this.deps.config.provisioningLeaseSeconds * 1000,
      },
      { kind, clinicId: state.clinicId, subjectName: state.clinicName, steps, state, ...options },
    ).finally(() => inProgress.dec());
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
    const server = this.serverOf(clinic);
    const actions: string[] = [];
    let dataLost = false;
    await withClient(server.url, async (admin) => {
      await admin.query('SELECT pg_advisory_lock(hashtext($1))', [`repair:${clinicId}`]);
      try {
        // A missing database is restored from quarantine when a copy waits there; recreated
        // empty otherwise, which for a clinic that held data (READY) is a loss, said as such.
        if (
          !(await databaseExists(admin, clinic.databaseName)) &&
          (await this.ledger.restoreClinic(clinicId))
        )
          actions.push(`restored database ${clinic.databaseName} from quarantine`);
        if (!(await databaseExists(admin, clinic.databaseName))) {
          await cloneDatabase(admin, clinic.databaseName, server.template.name);
          dataLost = clinic.status === 'READY';
          actions.push(
            dataLost
              ? `recreated database ${clinic.databaseName} EMPTY from template ${server.template.name}: its data is lost`
              : `recreated database ${clinic.databaseName} from template ${server.template.name}`,
          );
        }
        let password = clinicPassword(clinic, this.deps.config.encryptionKey);
        const hadRole = await roleExists(admin, clinic.databaseRole);
        if (!hadRole || !password || before.dbStatus === 'UNHEALTHY') {
          password = randomPassword();
          await ensureRole(admin, clinic.databaseRole, password);
          await this.prisma.clinic.update({
            where: { id: clinic.id },
            data: { databasePasswordEnc: encryptSecret(password, this.deps.config.encryptionKey, clinic.id) },
          });
          actions.push(
            hadRole
              ? `reset the password of role ${clinic.databaseRole}`
              : `recreated role ${clinic.databaseRole}`,
          );
        }
        await tagClinicObjects(admin, this.deps.db.deploymentId, clinic.databaseName, clinic.databaseRole);
      } finally {
        await admin.query('SELECT pg_advisory_unlock(hashtext($1))', [`repair:${clinicId}`]).catch(() => {});
      }
    });
    await this.clients.evict(clinicId);

    await withClient(databaseUrl(server.url, clinic.databaseName), async (client) => {
      const { applied, version } = await migrate(client, this.deps.db.clinicMigrations);
      for (const name of applied) actions.push(`applied migration ${name}`);
      await this.prisma.clinic.update({ where: { id: clinic.id }, data: { schemaVersion: version } });
      const { rows } = await client.query<{ relname: string }>(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
      );
      const present = new Set(rows.map((row) => row.relname));
      for (const table of this.integrity.shape.tables.filter((name) => !present.has(name))) {
        await client.query('BEGIN');
        try {
          for (const statement of this.integrity.shape.statementsFor(table)) await client.query(statement);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        }
        actions.push(`recreated table ${table}`);
      }
    });
    await grantClinicRole(server.url, clinic.databaseName, clinic.databaseRole);
    actions.push(`restored grants of role ${clinic.databaseRole}`);

    if (await this.seedAdminProvider(clinic.id))
      actions.push('seeded the healthcare provider of the clinic admin');
    const after = await this.checkClinic(clinicId);
    const recipients = dataLost ? await superAdminAddresses(this.prisma, this.deps.config.adminEmail) : [];
    // The repair's central effects, its record and its alerts commit together.
    await this.prisma.$transaction(async (tx) => {
      if (clinic.status === 'FAILED')
        await tx.clinic.update({ where: { id: clinic.id }, data: { status: 'READY' } });
      const entry = {
        actorId: actor.userId,
        ip: actor.ip ?? null,
        clinicId,
        targetType: 'clinic',
        targetId: clinicId,
      };
      await tx.auditLog.create({
        data: {
          ...entry,
          action: 'clinic.repair',
          data: { actions, before: before.dbStatus, after: after.dbStatus, dataLost },
        },
      });
      if (!dataLost) return;
      await tx.auditLog.create({
        data: { ...entry, action: 'clinic.data_lost', data: { databaseName: clinic.databaseName } },
      });
      await enqueueAlerts(
        tx,
        recipients,
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
    });
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
      await tx.auditLog.create({
        data: {
          action: MISSING_ACTION,
          actorId: null,
          clinicId: clinic.id,
          targetType: 'clinic',
          targetId: clinic.id,
          data: { databaseName: clinic.databaseName, server: health.server, errors: health.errors },
        },
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

  /** Re-creates the clinic admin's provider when absent. @returns whether it was created. */
  private async seedAdminProvider(clinicId: string): Promise<boolean> {
    const admin = await this.prisma.user.findFirst({
      where: { clinicId, role: 'CLINIC_ADMIN' },
      orderBy: { createdAt: 'asc' },
      select: { id: true, firstName: true, lastName: true, email: true },
    });
    if (!admin) return false;
    const prisma = await this.clients.get(clinicId);
    if (await prisma.healthcareProvider.findUnique({ where: { userId: admin.id }, select: { id: true } }))
      return false;
    await prisma.healthcareProvider.create({
      data: { userId: admin.id, firstName: admin.firstName, lastName: admin.lastName, email: admin.email },
    });
    return true;
  }

  /** Unpublishes `<subdomain>.<BASE_DOMAIN>` and revokes its certificate (idempotent). */
  async releaseSubdomain(subdomain: string): Promise<void> {
    const fqdn = clinicFqdn(subdomain, this.deps.config.baseDomain);
    await this.deps.dns?.unpublishSubdomain(fqdn);
    await this.deps.certificates?.revokeCertificate(fqdn);
  }

  /** Quarantines the clinic's database and role and marks it DELETED (restorable until the purge). */
  async deleteClinic(clinicId: string, actor: AuditActor = NO_ACTOR): Promise<void> {
    const clinic = await this.findClinic(clinicId);
    if (clinic.status === 'DELETED' || clinic.status === 'DELETING')
      throw new ConflictError(`The clinic is already ${clinic.status}.`);
    await this.refuseWhileMoving(clinicId);
    // Before any change: a clinic whose server is unreachable is refused whole, not half deleted.
    this.serverOf(clinic);
    await this.prisma.clinic.update({ where: { id: clinicId }, data: { status: 'DELETING' } });
    await this.clients.evict(clinicId);
    const { subdomain } = await this.prisma.clinic.findUniqueOrThrow({
      where: { id: clinicId },
      select: { subdomain: true },
    });
    // Name first: a deleted clinic must stop resolving even if dropping its database fails.
    await this.releaseSubdomain(subdomain);
    // Kept, not dropped (decision 040): quarantined for CLINIC_DELETE_RETENTION; the row stays
    // DELETED, so its users cannot sign in and its subdomain stays reserved until the purge.
    await this.ledger.quarantineClinic(
      clinicId,
      'clinic deleted',
      this.deps.config.clinicDeleteRetentionSeconds,
    );
    await this.prisma.$transaction(async (tx) => {
      await tx.clinic.update({ where: { id: clinicId }, data: { status: 'DELETED' } });
      await tx.auditLog.create({
        data: {
          action: 'clinic.delete',
          actorId: actor.userId,
          ip: actor.ip ?? null,
          clinicId,
          targetType: 'clinic',
          targetId: clinicId,
          data: { databaseName: clinic.databaseName },
        },
      });
    });
  }

  /**
   * Brings a DELETED clinic back within its retention (decision 040): its quarantined database
   * and role under their own names again, the ledger entries COMMITTED, the clinic READY, its
   * subdomain published again. Recorded as a RESTORE run and audited with its actor.
   * @throws NotFoundError; ConflictError when the clinic is not deleted, another restore holds
   *   it, or its retention is over (nothing left to restore).
   */
  async restoreClinic(clinicId: string, actor: AuditActor = NO_ACTOR): Promise<ClinicHealth> {
    const clinic = await this.findClinic(clinicId);
    if (clinic.status !== 'DELETED')
      throw new ConflictError(`The clinic is ${clinic.status}, not deleted: there is nothing to restore.`);
    const kept = await this.ledger.quarantinedDatabase(clinicId);
    if (!kept || (kept.purgeAfter && kept.purgeAfter <= new Date()))
      throw new ConflictError(
        'The retention of this deleted clinic is over: its database cannot be restored.',
      );
    this.serverOf(clinic);
    // One restore at a time: the claim is the status change itself.
    const claimed = await this.prisma.clinic.updateMany({
      where: { id: clinicId, status: 'DELETED' },
      data: { status: 'DELETING' },
    });
    if (claimed.count === 0) throw new ConflictError('Another operation is restoring this clinic.');
    const run = await this.prisma.provisioningRun.create({
      data: { clinicId, kind: 'RESTORE', subjectName: clinic.name },
      select: { id: true },
    });
    try {
      await this.ledger.restoreClinic(clinicId);
      await this.clients.evict(clinicId);
      const fqdn = clinicFqdn(clinic.subdomain, this.deps.config.baseDomain);
      await this.deps.dns?.publishSubdomain(fqdn);
      await this.deps.certificates?.ensureCertificate(fqdn);
      await this.prisma.$transaction(async (tx) => {
        await tx.clinic.update({ where: { id: clinicId }, data: { status: 'READY' } });
        await tx.provisioningRun.update({
          where: { id: run.id },
          data: { status: 'SUCCEEDED', finishedAt: new Date(), leaseUntil: null },
        });
        await tx.auditLog.create({
          data: {
            action: 'clinic.restore',
            actorId: actor.userId,
            ip: actor.ip ?? null,
            clinicId,
            targetType: 'clinic',
            targetId: clinicId,
            data: { databaseName: clinic.databaseName, runId: run.id },
          },
        });
      });
    } catch (error) {
      await this.prisma.provisioningRun
        .update({
          where: { id: run.id },
          data: { status: 'FAILED', finishedAt: new Date(), error: String(error) },
        })
        .catch(() => {});
      await this.prisma.clinic.updateMany({
        where: { id: clinicId, status: 'DELETING' },
        data: { status: 'DELETED' },
      });
      throw error;
    }
    return this.checkClinic(clinicId);
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
        OR: [{ trashName: target }, ...(UUID.test(target) ? [{ clinicId: target }] : [])],
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
    await this.prisma.auditLog.create({
      data: {
        action: 'clinic_object.restore',
        actorId: actor.userId,
        clinicId: entry.clinicId,
        targetType: 'database',
        targetId: entry.id,
        data: { database: entry.name, trashName: entry.trashName },
      },
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
  async purgeDue(now = new Date()): Promise<{ purged: number; clinics: string[] }> {
    const { purged, clinics } = await this.ledger.purgeDue(now);
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
        await tx.auditLog.create({
          data: {
            action: 'clinic.purge',
            clinicId,
            targetType: 'clinic',
            targetId: clinicId,
            data: { databaseName: clinic.databaseName },
          },
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
   * Applies pending clinic migrations to every READY clinic, `concurrency` at a time; a failure
   * is reported for its clinic and does not stop the others.
   */
  async migrateClinics(
    options: { concurrency?: number; onlyOutdated?: boolean } = {},
  ): Promise<MigrateClinicsReport> {
    const concurrency = options.concurrency ?? 4;
    const clinics = await this.prisma.clinic.findMany({
      where: {
        status: 'READY',
        ...(options.onlyOutdated
          ? { OR: [{ schemaVersion: null }, { schemaVersion: { not: this.integrity.version } }] }
          : {}),
      },
      select: CLINIC_RECORD,
    });
    const report: MigrateClinicsReport = { total: clinics.length, migrated: 0, upToDate: 0, failed: [] };
    await mapLimit(clinics, concurrency, async (clinic) => {
      try {
        const server = this.serverOf(clinic);
        const { applied, version } = await withClient(
          databaseUrl(server.url, clinic.databaseName),
          (client) => migrate(client, this.deps.db.clinicMigrations),
        );
        if (applied.length === 0) {
          report.upToDate += 1;
          return;
        }
        await grantClinicRole(server.url, clinic.databaseName, clinic.databaseRole);
        await this.prisma.clinic.update({ where: { id: clinic.id }, data: { schemaVersion: version } });
        report.migrated += 1;
      } catch (error) {
        report.failed.push({
          clinicId: clinic.id,
          error: error instanceof Error ? error.message : String(error),
        });
        this.deps.logger.error({ err: error, clinicId: clinic.id }, 'clinic migration failed');
      }
    });
    return report;
  }

  /**
   * A clinic being moved to another server (modules/moves) is neither repaired nor deleted: a
   * repair would reset the frozen role's password and let it log in on the source again.
   */
  private async refuseWhileMoving(clinicId: string): Promise<void> {
    if ((await this.prisma.clinicMove.count({ where: { clinicId, status: 'RUNNING' } })) > 0)
      throw new ClinicBusyError('The clinic is being moved to another server; try again when the move ends');
  }

  /** Tries again the configured servers that did not answer (a server back after an outage). */
  private async refreshServers(): Promise<void> {
    await this.deps.db.servers
      .refresh()
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'clinic server refresh failed'));
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
    const clinic = await this.prisma.clinic.findUnique({ where: { id: clinicId }, select: CLINIC_RECORD });
    if (!clinic) throw new NotFoundError('clinic');
    return clinic;
  }

  private serverOf(clinic: Pick<ClinicRecord, 'databaseServerId'>): ClinicServer {
    const server = this.servers.get(clinic.databaseServerId);
    if (!server) throw new ServerUnreachableError(this.serverNote(clinic.databaseServerId));
    return server;
  }
}
