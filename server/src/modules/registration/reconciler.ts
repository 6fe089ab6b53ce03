/**
 * Crash safety. A process killed mid-provisioning leaves a run RUNNING whose lease stops being
 * renewed; the reconciler finishes or undoes it: a hybrid registration's own job is brought
 * forward, anything else is rolled back. Databases and roles named like a clinic's but owned by
 * no clinic are dropped once no live run can still be working on them. `zombieReport` shows what
 * would need either.
 */
import type { CentralPrisma, ClinicServer } from '../../db/database.js';
import { withClient } from '../../db/sql.js';
import type { Logger } from '../../logger.js';
import { dropClinicObjects, ownerTag } from '../provisioning/admin.js';
import { CLINIC_OBJECT_PREFIX } from '../provisioning/names.js';
import type { ProvisioningService } from '../provisioning/service.js';

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

export interface ZombieReport {
  checkedAt: Date;
  accounts: ZombieAccount[];
  orphans: OrphanObject[];
}

export interface ReconcileResult {
  abandonedRuns: number;
  rolledBack: number;
  resumed: number;
  orphansDropped: number;
}

export interface ReconcilerDeps {
  prisma: CentralPrisma;
  logger: Logger;
  provisioning: ProvisioningService;
}

const ID_SUFFIX = /_([0-9a-f]{16})$/;

export class Reconciler {
  constructor(private readonly deps: ReconcilerDeps) {}

  async reconcile(): Promise<ReconcileResult> {
    const result: ReconcileResult = { abandonedRuns: 0, rolledBack: 0, resumed: 0, orphansDropped: 0 };
    await this.reconcileRuns(result);
    for (const orphan of await this.findOrphans()) {
      const server = this.deps.provisioning.integrity.servers.get(orphan.server);
      if (!server) continue;
      await dropClinicObjects(
        server.url,
        orphan.kind === 'DATABASE' ? orphan.name : null,
        orphan.kind === 'ROLE' ? orphan.name : null,
      );
      this.deps.logger.warn({ orphan }, 'dropped an orphaned clinic object');
      result.orphansDropped += 1;
    }
    return result;
  }

  private async reconcileRuns(result: ReconcileResult): Promise<void> {
    const { prisma, logger, provisioning } = this.deps;
    const stale = await prisma.provisioningRun.findMany({
      where: { status: 'RUNNING', leaseUntil: { lt: new Date() } },
      select: { id: true, clinicId: true, kind: true },
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
      const clinic = await prisma.clinic.findUnique({ where: { id: run.clinicId } });
      if (!clinic || run.kind !== 'REGISTER') continue; // orphans are swept below
      if (clinic.status === 'READY' || clinic.status === 'FAILED') continue;
      const rescheduled = await prisma.$executeRaw`
        SELECT graphile_worker.reschedule_jobs(ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = ${`provision:${clinic.id}`}), run_at := now())`;
      const hasJob = await prisma.$queryRaw<{ n: number }[]>`
        SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE key = ${`provision:${clinic.id}`}`;
      if ((hasJob[0]?.n ?? 0) > 0) {
        logger.info({ clinicId: clinic.id, rescheduled }, 'abandoned hybrid registration handed to its job');
        result.resumed += 1;
        continue;
      }
      await provisioning.releaseSubdomain(clinic.subdomain);
      const server = provisioning.integrity.servers.get(clinic.databaseServerId);
      if (server) await dropClinicObjects(server.url, clinic.databaseName, clinic.databaseRole);
      await prisma.company.deleteMany({ where: { id: clinic.companyId } });
      await prisma.provisioningRun.update({ where: { id: run.id }, data: { status: 'ROLLED_BACK' } });
      await prisma.auditLog.create({
        data: {
          action: 'registration.reconciled',
          clinicId: clinic.id,
          targetType: 'clinic',
          targetId: clinic.id,
          data: { runId: run.id, outcome: 'rolled_back' },
        },
      });
      logger.warn({ clinicId: clinic.id, runId: run.id }, 'abandoned registration rolled back');
      result.rolledBack += 1;
    }
  }

  /** Clinic databases and roles that no clinic owns and no live run is working on. */
  async findOrphans(): Promise<OrphanObject[]> {
    const { prisma, provisioning } = this.deps;
    const clinics = await prisma.clinic.findMany({
      select: { databaseName: true, databaseRole: true, databaseServerId: true },
    });
    const live = await prisma.provisioningRun.findMany({
      where: { status: 'RUNNING', leaseUntil: { gte: new Date() } },
      select: { clinicId: true },
    });
    const busy = new Set(live.map((run) => run.clinicId.replaceAll('-', '').slice(0, 16)));
    const orphans: OrphanObject[] = [];
    for (const server of provisioning.integrity.servers.values()) {
      const owned = new Set(
        clinics
          .filter((clinic) => clinic.databaseServerId === server.id)
          .flatMap((clinic) => [clinic.databaseName, clinic.databaseRole]),
      );
      for (const object of await listClinicObjects(server, provisioning.deploymentId)) {
        const id = ID_SUFFIX.exec(object.name)?.[1];
        if (owned.has(object.name) || (id && busy.has(id))) continue;
        orphans.push(object);
      }
    }
    return orphans;
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
      (
        await prisma.$queryRaw<
          { key: string }[]
        >`SELECT key FROM graphile_worker.jobs WHERE key LIKE 'provision:%'`
      ).map((row) => row.key.slice('provision:'.length)),
    );
    const accounts: ZombieAccount[] = [];
    for (const check of health.clinics) {
      const status = clinics.get(check.clinicId) ?? 'UNKNOWN';
      if (status === 'READY' && check.dbStatus !== 'HEALTHY') {
        accounts.push({ ...pick(check, status), reason: `ready clinic with a ${check.dbStatus} database` });
      } else if (
        (status === 'PROVISIONING' || status === 'PENDING') &&
        !live.has(check.clinicId) &&
        !queued.has(check.clinicId)
      ) {
        accounts.push({ ...pick(check, status), reason: 'provisioning with no live run and no queued job' });
      }
    }
    return { checkedAt: new Date(), accounts, orphans: await this.findOrphans() };
  }
}

function pick(check: { clinicId: string; name: string; dbStatus: string }, status: string) {
  return { clinicId: check.clinicId, name: check.name, status, dbStatus: check.dbStatus };
}

/** Clinic databases and roles on `server` tagged as this deployment's (never anyone else's). */
async function listClinicObjects(server: ClinicServer, deploymentId: string): Promise<OrphanObject[]> {
  const tag = ownerTag(deploymentId);
  return withClient(server.url, async (admin) => {
    const databases = await admin.query<{ name: string }>(
      `SELECT datname AS name FROM pg_database
        WHERE starts_with(datname, $1) AND shobj_description(oid, 'pg_database') = $2`,
      [CLINIC_OBJECT_PREFIX, tag],
    );
    const roles = await admin.query<{ name: string }>(
      `SELECT rolname AS name FROM pg_roles
        WHERE starts_with(rolname, $1) AND shobj_description(oid, 'pg_authid') = $2`,
      [CLINIC_OBJECT_PREFIX, tag],
    );
    return [
      ...databases.rows.map((row) => ({ server: server.id, name: row.name, kind: 'DATABASE' as const })),
      ...roles.rows.map((row) => ({ server: server.id, name: row.name, kind: 'ROLE' as const })),
    ];
  });
}
