/**
 * Crash safety. A process killed mid-provisioning leaves a run RUNNING whose lease stops being
 * renewed; the reconciler finishes or undoes it: a hybrid registration's own job is brought
 * forward, any other registration is rolled back; a deletion, restore or repair is taken over by
 * the provisioning module (`resumeAbandoned`: the clinic ends DELETED, READY, repaired). Databases and roles the ledger lists for runs that ended
 * without committing are quarantined (provisioning/ledger.ts). The purge after their retention is
 * a job of its own (`purge`, the `purge_quarantine` task). `zombieReport` shows what would need either.
 */
import type { CentralPrisma } from '../../db/database.js';
import type { ServerRegistry } from '../../db/servers.js';
import { jobExists, jobKeys, runJobNow } from '../../jobs/index.js';
import type { Logger } from '../../logger.js';
import { recordAudit } from '../audit/record.js';
import { alertServerIdentity } from '../provisioning/alerts.js';
import type { LedgerEntry, ProvisioningService } from '../provisioning/index.js';

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
  async purge(now = new Date()): Promise<{ purged: number; clinics: string[] }> {
    // A deleted clinic the ledger has nothing of is taken in first: never left forever.
    await this.deps.provisioning.ledger.adoptDeleted(now);
    const result = await this.deps.provisioning.purgeDue(now);
    await this.deps.provisioning.ledger.schedulePurge();
    return result;
  }

  private async reconcileRuns(result: ReconcileResult): Promise<void> {
    const { prisma, logger, provisioning } = this.deps;
    const stale = await prisma.provisioningRun.findMany({
      where: { status: 'RUNNING', leaseUntil: { lt: new Date() } },
      select: { id: true, clinicId: true, kind: true, attempt: true },
    });
    for (const run of stale) {
      // Claim it: of several instances reconciling at once, one wins each run.
      const claimed = await prisma.provisioningRun.updateMany({
        where: { id: run.id, status: 'RUNNING', leaseUntil: { lt: new Date() } },
        data: {
          status: 'FAILED',
          error: 'abandoned: its process stopped renewing the lease',
          finishedAt: new Date(),
          leaseUntil: null,
        },
      });
      if (claimed.count === 0) continue;
      result.abandonedRuns += 1;
      // An onboarding's run has no clinic; its onboarding frees itself (its own lease).
      if (!run.clinicId) continue;
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
        continue;
      }
      if (!clinic) continue; // orphans are swept below
      if (clinic.status === 'READY' || clinic.status === 'FAILED') continue;
      const rescheduled = await runJobNow(prisma, `provision:${clinic.id}`);
      if (await jobExists(prisma, `provision:${clinic.id}`)) {
        logger.info({ clinicId: clinic.id, rescheduled }, 'abandoned hybrid registration handed to its job');
        result.resumed += 1;
        continue;
      }
      await provisioning.releaseSubdomain(clinic.subdomain);
      // Its database and role stay PENDING in the ledger: the sweep below quarantines them.
      await prisma.company.deleteMany({ where: { id: clinic.companyId } });
      await prisma.provisioningRun.update({ where: { id: run.id }, data: { status: 'ROLLED_BACK' } });
      await recordAudit(prisma, {
        action: 'registration.reconciled',
        clinicId: clinic.id,
        targetType: 'clinic',
        targetId: clinic.id,
        data: { runId: run.id, outcome: 'rolled_back' },
      });
      logger.warn({ clinicId: clinic.id, runId: run.id }, 'abandoned registration rolled back');
      result.rolledBack += 1;
    }
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
    const accounts: ZombieAccount[] = [];
    for (const check of health.clinics) {
      const status = clinics.get(check.clinicId) ?? 'UNKNOWN';
      if (status === 'READY' && check.dbStatus !== 'HEALTHY') {
        const why = check.errors[0] ? `: ${check.errors[0]}` : '';
        accounts.push({
          ...pick(check, status),
          reason: `ready clinic with a ${check.dbStatus} database${why}`,
        });
      } else if (
        (status === 'PROVISIONING' || status === 'PENDING') &&
        !live.has(check.clinicId) &&
        !queued.has(check.clinicId)
      ) {
        accounts.push({ ...pick(check, status), reason: 'provisioning with no live run and no queued job' });
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
