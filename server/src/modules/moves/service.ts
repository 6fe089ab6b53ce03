/**
 * Moves a clinic's database to another configured server, online, as a MOVE run
 * (docs/decisions/049): the request is checked whole before anything changes, one move of a
 * clinic runs at a time, and the run's plan (steps.ts) undoes itself on any failure before the
 * switch. Other modules use only this module's index.ts.
 */
import type { CentralPrisma, Databases } from '../../db/database.js';
import { withPooled } from '../../db/sql.js';
import type { Config } from '../../env.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import { isUuid } from '../../ids.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import { recordClinicAudit } from '../audit/record.js';
import {
  type AuditActor,
  clinicPassword,
  clinicSubject,
  databaseExists,
  type ProvisioningEvent,
  ProvisioningFailedError,
  type ProvisioningService,
  roleExists,
  ServerUnreachableError,
} from '../provisioning/index.js';
import { dropPublication, dropSlot, dropSubscription, replicationName, unfreezeRole } from './replication.js';
import { MoveSessions, type MoveState, type MoveStepDeps, movePlan } from './steps.js';

export interface MoveResult {
  clinicId: string;
  runId: string;
  /** Names of the servers it left and now lives on. */
  from: string;
  to: string;
  /** Milliseconds from the write freeze of the source to the switch of the central record. */
  downtimeMs: number;
  /** Rows of each table, equal on both copies at the freeze. */
  rowsVerified: { table: string; rows: number }[];
}

/** A configured clinic database server, as the console lists them to choose a move's target. */
export interface DatabaseServerView {
  id: string;
  name: string;
  address: string;
  reachable: boolean;
  /** Held (docs/decisions/090): nothing is placed on it until it is released. */
  held: boolean;
  /**
   * While held: the name of the recorded server it stands in for, whose live clinics are at
   * stake (docs/decisions/094); null when not held.
   */
  heldFor: string | null;
  /** Why it cannot be reached, when it cannot. */
  reason: string | null;
  clinics: number;
}

export interface MoveServiceDeps {
  config: Config;
  logger: Logger;
  db: Databases;
  metrics: Metrics;
  provisioning: ProvisioningService;
  publishProgress(event: ProvisioningEvent): void;
  /** Timeouts of the waits on replication (tests make them short). */
  timeouts?: Pick<MoveStepDeps, 'copyTimeoutMs' | 'finalCatchUpTimeoutMs'>;
}

export class MoveService {
  private readonly prisma: CentralPrisma;

  constructor(private readonly deps: MoveServiceDeps) {
    this.prisma = deps.db.prisma;
  }

  /** Every recorded clinic database server, reachable or not, with its clinic count. */
  async servers(): Promise<DatabaseServerView[]> {
    const { servers } = this.deps.db;
    const counts = await this.prisma.clinic.groupBy({ by: ['databaseServerId'], _count: { _all: true } });
    const load = new Map(counts.map((row) => [row.databaseServerId, row._count._all]));
    const rows = await this.prisma.databaseServer.findMany({ orderBy: { createdAt: 'asc' } });
    const names = new Map(rows.map((row) => [row.id, row.name]));
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      address: row.address,
      reachable: servers.byId.has(row.id),
      held: row.heldReason !== null,
      heldFor: row.heldReason !== null && row.heldForId ? (names.get(row.heldForId) ?? null) : null,
      reason: servers.byId.has(row.id) ? null : (servers.unreachable.get(row.id)?.reason ?? row.lastError),
      clinics: load.get(row.id) ?? 0,
    }));
  }

  /**
   * Moves the clinic's database to `server` (a recorded server's name or id).
   * @throws NotFoundError (no such clinic or server); ConflictError when the clinic is not READY,
   *   is already there, a move of it is under way, a server is unreachable, a copy of it is kept
   *   on the target, or their schema versions differ; ProvisioningFailedError after a rollback.
   */
  async moveClinic(
    clinicId: string,
    server: string,
    actor: AuditActor = { userId: null },
  ): Promise<MoveResult> {
    const { provisioning, db } = this.deps;
    const clinic = await this.prisma.clinic.findUnique({ where: { id: clinicId } });
    if (!clinic) throw new NotFoundError('clinic');
    const targetRow = await this.prisma.databaseServer.findFirst({
      where: { OR: [{ name: server }, ...(isUuid(server) ? [{ id: server }] : [])] },
    });
    if (!targetRow) throw new NotFoundError('database server');
    if (targetRow.id === clinic.databaseServerId)
      throw new ConflictError(`The clinic is already on ${targetRow.name}.`);
    if (clinic.status !== 'READY')
      throw new ConflictError(`The clinic is ${clinic.status}: only a READY clinic can be moved.`);
    await db.servers.refresh().catch(() => {});
    const source = db.servers.byId.get(clinic.databaseServerId);
    if (!source) throw new ServerUnreachableError(this.unreachable(clinic.databaseServerId));
    const target = db.servers.byId.get(targetRow.id);
    if (!target) throw new ServerUnreachableError(this.unreachable(targetRow.id));
    if (clinic.schemaVersion !== target.template.version)
      throw new ConflictError(
        `The clinic's database is at schema ${clinic.schemaVersion ?? 'unknown'}, ${target.name} clones ${target.template.version}: upgrade it first.`,
      );
    const kept = await this.prisma.clinicObject.count({
      where: { clinicId, serverId: target.id, state: { in: ['PENDING', 'COMMITTED', 'QUARANTINED'] } },
    });
    if (kept > 0)
      throw new ConflictError(
        `A copy of this clinic is kept on ${target.name} (quarantined or unsettled): restore or purge it first.`,
      );
    const taken = await withPooled(
      target.admin,
      async (admin) =>
        (await databaseExists(admin, clinic.databaseName)) || (await roleExists(admin, clinic.databaseRole)),
    );
    if (taken)
      throw new ConflictError(`${target.name} already has a database or role of this clinic's name.`);
    const password = clinicPassword(clinic, this.deps.config.encryptionKey);
    if (!password)
      throw new ConflictError("The clinic role's password is unreadable: repair the clinic first.");

    const moveId = await this.claim(clinicId, source.id, target.id, actor);
    const state: MoveState = {
      clinicId,
      clinicName: clinic.name,
      moveId,
      source,
      target,
      databaseName: clinic.databaseName,
      roleName: clinic.databaseRole,
      password,
      sessions: new MoveSessions(source, target, clinic.databaseName),
    };
    const plan = movePlan({
      prisma: this.prisma,
      ledger: provisioning.ledger,
      pool: provisioning.pool,
      clients: provisioning.clients,
      deploymentId: provisioning.deploymentId,
      logger: this.deps.logger,
      sourceRetentionSeconds: this.deps.config.clinicDeleteRetentionSeconds,
      ...this.deps.timeouts,
    });
    const result = await provisioning
      .run(plan, clinicSubject(clinicId, clinic.name), state)
      .finally(() => state.sessions.close());

    const status = result.ok ? 'SUCCEEDED' : result.rolledBack ? 'ROLLED_BACK' : 'FAILED';
    const error = result.ok ? null : `${result.failedStep}: ${result.error.message}`.slice(0, 500);
    await this.prisma.$transaction(async (tx) => {
      await tx.clinicMove.update({
        where: { id: moveId },
        data: { status, error, finishedAt: new Date(), runId: result.runId },
      });
      await recordClinicAudit(tx, 'clinic.move', clinicId, {
        actor,
        data: {
          runId: result.runId,
          from: source.name,
          to: target.name,
          outcome: status,
          downtimeMs: state.downtimeMs ?? null,
        },
      });
    });
    if (!result.ok) throw new ProvisioningFailedError(result.failedStep, result.runId, result.rolledBack);
    return {
      clinicId,
      runId: result.runId,
      from: source.name,
      to: target.name,
      downtimeMs: state.downtimeMs ?? 0,
      rowsVerified: Object.entries(state.rowsVerified ?? {}).map(([table, rows]) => ({ table, rows })),
    };
  }

  /**
   * Finishes or undoes the moves whose process died (their run ended, or stopped renewing its
   * lease), as the run's own undo would have: before the switch, the subscription, slot and
   * publication dropped, the source unfrozen, the target's database and role dropped when the
   * ledger still gives them to that run (quarantined when the sweep settled them meanwhile);
   * after the switch, the replication dropped and the source quarantined. Called with the
   * reconciler. @returns how many moves it took over.
   */
  async recoverAbandoned(): Promise<number> {
    const { servers } = this.deps.db;
    const { ledger } = this.deps.provisioning;
    const stale = await this.prisma.$queryRaw<{ id: string }[]>`
      SELECT m.id::text FROM clinic_moves m WHERE m.status = 'RUNNING' AND ${this.abandoned()}`;
    let recovered = 0;
    for (const { id } of stale) {
      const move = await this.prisma.clinicMove.findUniqueOrThrow({ where: { id } });
      const source = servers.byId.get(move.fromServerId);
      const target = servers.byId.get(move.toServerId);
      // Left RUNNING until both servers answer: nothing is decided about a server not seen.
      if (!source || !target) continue;
      const claimed = await this.prisma.$queryRaw<{ id: string }[]>`
        UPDATE clinic_moves m SET error = 'abandoned: recovering', finished_at = now()
         WHERE m.id = ${id}::uuid AND m.status = 'RUNNING' AND m.finished_at IS NULL AND ${this.abandoned()}
        RETURNING m.id::text`;
      if (claimed.length === 0) continue;
      const clinic = await this.prisma.clinic.findUnique({ where: { id: move.clinicId } });
      const switched = clinic?.databaseServerId === target.id;
      const sessions = new MoveSessions(source, target, clinic?.databaseName ?? '');
      try {
        if (clinic && move.runId) {
          const name = replicationName(move.runId);
          await dropSubscription(await sessions.targetDb(), name, () => sessions.sourceAdmin()).catch(
            async () => dropSlot(await sessions.sourceAdmin(), name),
          );
          await dropPublication(await sessions.sourceDb(), name).catch(() => {});
        }
        await sessions.close();
        if (clinic && switched) {
          await ledger.quarantineOnServer(
            clinic.id,
            source.id,
            `moved to ${target.name}`,
            this.deps.config.clinicDeleteRetentionSeconds,
          );
        } else if (clinic) {
          // Only a clinic still in service: a deleted one's role stays closed in its quarantine.
          if (clinic.status === 'READY')
            await withPooled(source.admin, (admin) => unfreezeRole(admin, clinic.databaseRole));
          const objects = {
            serverId: target.id,
            clinicId: clinic.id,
            database: clinic.databaseName,
            role: clinic.databaseRole,
          };
          if (move.runId) await ledger.undoCreated(objects, move.runId);
          await ledger.quarantineOnServer(
            clinic.id,
            target.id,
            'left by an abandoned move',
            this.deps.config.clinicTrashRetentionSeconds,
          );
        }
        await this.prisma.clinicMove.update({
          where: { id },
          data: {
            status: switched ? 'SUCCEEDED' : 'ROLLED_BACK',
            error: switched
              ? 'abandoned after the switch; finished by the recovery'
              : 'abandoned; undone by the recovery',
          },
        });
        this.deps.logger.warn(
          { clinicId: move.clinicId, moveId: id, switched },
          'abandoned clinic move recovered',
        );
        recovered += 1;
      } catch (error) {
        await sessions.close();
        await this.prisma.clinicMove.update({
          where: { id },
          data: { status: 'FAILED', error: `abandoned; recovery failed: ${String(error)}`.slice(0, 500) },
        });
        this.deps.logger.error(
          { err: error, clinicId: move.clinicId, moveId: id },
          'abandoned clinic move not recovered',
        );
      }
    }
    return recovered;
  }

  /** SQL: the move `m` is abandoned (its run over, or its lease expired; no run after a lease). */
  private abandoned() {
    const leaseSeconds = this.deps.config.provisioningLeaseSeconds;
    return Prisma.sql`CASE WHEN m.run_id IS NULL THEN m.started_at < now() - make_interval(secs => ${leaseSeconds})
      ELSE NOT EXISTS (SELECT 1 FROM provisioning_runs r
                        WHERE r.id = m.run_id AND r.status = 'RUNNING' AND r.lease_until > now()) END`;
  }

  /**
   * One move of a clinic at a time: the claim is a RUNNING row (a partial unique index). A claim
   * whose run is over, or was abandoned by a crashed process (its lease expired), is closed first.
   */
  private async claim(clinicId: string, fromId: string, toId: string, actor: AuditActor): Promise<string> {
    // An abandoned claim is recovered first (its source unfrozen, its replication dropped).
    await this.recoverAbandoned();
    const rows = await this.prisma.$queryRaw<{ id: string }[]>`
      INSERT INTO clinic_moves (clinic_id, from_server_id, to_server_id, actor_id)
      VALUES (${clinicId}::uuid, ${fromId}::uuid, ${toId}::uuid, ${actor.userId}::uuid)
      ON CONFLICT (clinic_id) WHERE status = 'RUNNING' DO NOTHING
      RETURNING id::text`;
    const id = rows[0]?.id;
    if (!id) throw new ConflictError('A move of this clinic is already under way.');
    return id;
  }

  private unreachable(serverId: string): string {
    const { servers } = this.deps.db;
    const name = servers.names.get(serverId) ?? serverId;
    const reason = servers.unreachable.get(serverId)?.reason ?? 'not configured (CLINIC_DATABASE_SERVERS)';
    return `Database server ${name} is unreachable: ${reason}`;
  }
}
