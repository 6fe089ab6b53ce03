/**
 * Crash safety. A process killed mid-provisioning leaves a run RUNNING whose lease stops being
 * renewed; the reconciler takes it over under a lease of its own and finishes or undoes it,
 * closing the run only with (or after) the clinic's final state, so a reconciler killed in turn
 * leaves the run to the next sweep: a hybrid registration's own job is brought
 * forward, any other registration is rolled back; a deletion, restore or repair is taken over by
 * the provisioning module (`resumeAbandoned`: the clinic ends DELETED, READY, repaired). Databases and roles the ledger lists for runs that ended
 * without committing are quarantined (provisioning/ledger.ts). The purge after their retention is
 * a job of its own (`purge`, the `purge_quarantine` task). `zombieReport` shows what would need either.
 */
import type { CentralPrisma } from '../../db/database.js';
import type { ServerRegistry } from '../../db/servers.js';
import { failedJobs, jobExists, jobKeys, runJobNow } from '../../jobs/index.js';
import type { Logger } from '../../logger.js';
import { recordAudit } from '../audit/record.js';
import {
  alertServerIdentity,
  InjectedTakeoverCrash,
  type LedgerEntry,
  type ProvisioningService,
  RUN_LEASE_MS,
  type TakeoverCrashPoint,
} from '../provisioning/index.js';

const ABANDONED = 'abandoned: its process stopped renewing the lease';

export interface ZombieAccount {
  clinicId: string;
  name: string;
  status: string;
  dbStatus: string;
  reason: string;
}

export interface OrphanObject {
  server: string;
  name: string;
  kind: 'DATABASE' | 'ROLE';
}

export interface QuarantinedObject extends OrphanObject {
  clinicId: string;
  trashName: string | null;
  reason: string | null;
  purgeAfter: Date | null;
}

export interface ZombieReport {
  checkedAt: Date;
  accounts: ZombieAccount[];
  /** Ledger entries of finished runs that did not commit: the next sweep quarantines them. */
  orphans: OrphanObject[];
  /** Kept, closed and renamed, until the purge after their retention. */
  quarantined: QuarantinedObject[];
}

export interface ReconcileResult {
  abandonedRuns: number;
  rolledBack: number;
  resumed: number;
  orphansQuarantined: number;
}

export interface ReconcilerDeps {
  prisma: CentralPrisma;
  logger: Logger;
  provisioning: ProvisioningService;
  /**
   * The lease a takeover holds its run under, renewed while it works (PROVISIONING_LEASE_SECONDS).
   * @default RUN_LEASE_MS
   */
  leaseMs?: number;
  /** Clinic servers and where alerts go: a server answering as another one is alerted each pass (once per incident). */
  alerts?: { servers: ServerRegistry; adminEmail: string; encryptionKey: Buffer };
}

export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = {
      abandonedRuns: 0,
      rolledBack: 0,
      resumed: 0,
      orphansQuarantined: 0,
    };
    await this.reconcileRuns(result);
    const { ledger } = this.deps.provisioning;
    // Only what the ledger lists, and only quarantined: nothing is dropped on an inference.
    result.orphansQuarantined = await ledger.sweep();
    const { alerts } = this.deps;
    if (alerts) await alertServerIdentity({ prisma: this.deps.prisma, logger: this.deps.logger, ...alerts });
    return result;
  }

  /**
   * The `purge_quarantine` job: drops what is due (and a purged deleted clinic's central rows),
   * then schedules itself for the next retention's end. graphile-worker runs it in one queue, so
   * two instances never purge at once.
   */
  async purge(at?: Date): Promise<{ purged: number; clinics: string[] }> {
    // A deleted clinic the ledger has nothing of is taken in first: never left forever.
    // `at` is a test's later day; the job counts on the central database's clock (the ledger's).
    await this.deps.provisioning.ledger.adoptDeleted(at);
    const result = await this.deps.provisioning.purgeDue(at);
    await this.deps.provisioning.ledger.schedulePurge();
    return result;
  }

  /**
   * Takes over every run whose lease lapsed. A takeover holds the run RUNNING under its own
   * renewed lease until the clinic's final state is written, and closes it only then (for a
   * rollback, in the same transaction): a sweep never shows a finished run beside a clinic still
   * being undone, and a reconciler that dies mid-way leaves a run whose lease lapses again, so
   * the next sweep takes it over (docs/decisions/058).
   */
  private async reconcileRuns(result: ReconcileResult): Promise<void> {
    const { prisma, logger } = this.deps;
    const stale = await prisma.provisioningRun.findMany({
      where: { status: 'RUNNING', leaseUntil: { lt: new Date() } },
      orderBy: { startedAt: 'asc' },
      select: { id: true, clinicId: true, kind: true, attempt: true, startedAt: true },
    });
    for (const run of stale) {
      const stop = await this.claim(run.id);
      if (!stop) continue;
      result.abandonedRuns += 1;
      const failure = await this.takeOver(run, result).then(
        () => null,
        (error: unknown) => error,
      );
      stop();
      // A "killed" reconciler leaves the run as a dead process would: the next sweep's.
      if (failure instanceof InjectedTakeoverCrash) throw failure;
      if (failure) {
        logger.error({ err: failure, runId: run.id, kind: run.kind }, 'abandoned run not taken over yet');
        // Not closed on a failure: its lease is given up, so the next sweep tries again.
        await prisma.provisioningRun
          .updateMany({ where: { id: run.id, status: 'RUNNING' }, data: { leaseUntil: new Date() } })
          .catch(() => {});
      }
    }
  }

  /**
   * Claims an abandoned run (of several instances reconciling at once, one wins each run) and
   * renews its lease while this reconciler works on it.
   * @returns what stops the renewal, or null when another reconciler has the run.
   */
  private async claim(runId: string): Promise<(() => void) | null> {
    const { prisma, logger } = this.deps;
    const leaseMs = this.deps.leaseMs ?? RUN_LEASE_MS;
    const claimed = await prisma.provisioningRun.updateMany({
      where: { id: runId, status: 'RUNNING', leaseUntil: { lt: new Date() } },
      data: { error: ABANDONED, leaseUntil: new Date(Date.now() + leaseMs) },
    });
    if (claimed.count === 0) return null;
    const heartbeat = setInterval(() => {
      prisma.provisioningRun
        .updateMany({
          where: { id: runId, status: 'RUNNING' },
          data: { leaseUntil: new Date(Date.now() + leaseMs) },
        })
        .catch((error: unknown) => logger.warn({ err: error, runId }, 'takeover lease renewal failed'));
    }, leaseMs / 3);
    heartbeat.unref();
    return () => clearInterval(heartbeat);
  }

  /** Finishes or undoes one claimed run; closes it last. */
  private async takeOver(
    run: { id: string; clinicId: string | null; kind: string; attempt: number; startedAt: Date },
    result: ReconcileResult,
  ): Promise<void> {
    const { prisma, logger, provisioning } = this.deps;
    const close = () =>
      prisma.provisioningRun.update({
        where: { id: run.id },
        data: { status: 'FAILED', finishedAt: new Date(), leaseUntil: null },
      });
    this.crashPoint('claimed');
    // An onboarding's run has no clinic; its onboarding frees itself (its own lease).
    if (!run.clinicId) return void (await close());
    // A later run of the clinic is this one's takeover (or retry) already: only closing is left.
    const later = await prisma.provisioningRun.count({
      where: { clinicId: run.clinicId, startedAt: { gt: run.startedAt } },
    });
    if (later > 0) return void (await close());
    const clinic = await prisma.clinic.findUnique({ where: { id: run.clinicId } });
    if (clinic && run.kind !== 'REGISTER') {
      // Deletions, restores and repairs are taken over by the provisioning module (a clinic
      // never stays DELETING); upgrades and moves recover in their own modules.
      const taken = await provisioning
        .resumeAbandoned({ id: run.id, kind: run.kind, clinicId: clinic.id, attempt: run.attempt })
        .catch((error: unknown) => {
          logger.error({ err: error, runId: run.id, kind: run.kind }, 'abandoned run not taken over');
          return null;
        });
      if (taken) result.resumed += 1;
      return void (await close());
    }
    // Orphans are swept after the runs; a finished clinic needs nothing.
    if (!clinic || clinic.status === 'READY' || clinic.status === 'FAILED') return void (await close());
    const rescheduled = await runJobNow(prisma, `provision:${clinic.id}`);
    if (await jobExists(prisma, `provision:${clinic.id}`)) {
      logger.info({ clinicId: clinic.id, rescheduled }, 'abandoned hybrid registration handed to its job');
      result.resumed += 1;
      return void (await close());
    }
    await provisioning.releaseSubdomain(clinic.subdomain);
    this.crashPoint('undone');
    // The clinic's end and the run's, together. Its database and role stay PENDING in the
    // ledger: the sweep after the runs quarantines them.
    await prisma.$transaction([
      prisma.company.deleteMany({ where: { id: clinic.companyId } }),
      prisma.provisioningRun.update({
        where: { id: run.id },
        data: { status: 'ROLLED_BACK', finishedAt: new Date(), leaseUntil: null },
      }),
      recordAudit(prisma, {
        action: 'registration.reconciled',
        clinicId: clinic.id,
        targetType: 'clinic',
        targetId: clinic.id,
        data: { runId: run.id, outcome: 'rolled_back' },
      }),
    ]);
    logger.warn({ clinicId: clinic.id, runId: run.id }, 'abandoned registration rolled back');
    result.rolledBack += 1;
  }

  /** Fault injection: a reconciler "killed" at `point` of a takeover. */
  private crashPoint(point: TakeoverCrashPoint): void {
    if (this.deps.provisioning.faults.takeoverCrashes(point)) throw new InjectedTakeoverCrash(point);
  }

  async zombieReport(): Promise<ZombieReport> {
    const { prisma, provisioning } = this.deps;
    const health = await provisioning.clinicsHealth();
    const clinics = new Map(
      (await prisma.clinic.findMany({ select: { id: true, status: true } })).map((clinic) => [
        clinic.id,
        clinic.status,
      ]),
    );
    const live = new Set(
      (
        await prisma.provisioningRun.findMany({
          where: { status: 'RUNNING', leaseUntil: { gte: new Date() } },
          select: { clinicId: true },
        })
      ).map((run) => run.clinicId),
    );
    const queued = new Set(
      (await jobKeys(prisma, 'provision:')).map((key) => key.slice('provision:'.length)),
    );
    const failed = new Map(
      (await failedJobs(prisma, 'provision:')).map((job) => [
        job.key.slice('provision:'.length),
        job.lastError,
      ]),
    );
    const accounts: ZombieAccount[] = [];
    for (const check of health.clinics) {
      const status = clinics.get(check.clinicId) ?? 'UNKNOWN';
      if (status === 'READY' && check.dbStatus !== 'HEALTHY') {
        const why = check.errors[0] ? `: ${check.errors[0]}` : '';
        accounts.push({
          ...pick(check, status),
          reason: `ready clinic with a ${check.dbStatus} database${why}`,
        });
      } else if ((status === 'PROVISIONING' || status === 'PENDING') && !live.has(check.clinicId)) {
        if (failed.has(check.clinicId)) {
          // Kept for an operator, never run again by itself (decision 084 says how to).
          const why = failed.get(check.clinicId);
          accounts.push({
            ...pick(check, status),
            reason: `provisioning job failed for good${why ? `: ${why}` : ''}`,
          });
        } else if (!queued.has(check.clinicId)) {
          accounts.push({
            ...pick(check, status),
            reason: 'provisioning with no live run and no queued job',
          });
        }
      }
    }
    const { ledger } = provisioning;
    const view = (entry: LedgerEntry) => ({ server: entry.server, name: entry.name, kind: entry.kind });
    return {
      checkedAt: new Date(),
      accounts,
      orphans: (await ledger.unsettled()).map(view),
      quarantined: (await ledger.quarantined()).map((entry) => ({
        ...view(entry),
        clinicId: entry.clinicId,
        trashName: entry.trashName,
        reason: entry.reason,
        purgeAfter: entry.purgeAfter,
      })),
    };
  }
}

function pick(check: { clinicId: string; name: string; dbStatus: string }, status: string) {
  return { clinicId: check.clinicId, name: check.name, status, dbStatus: check.dbStatus };
}
