/**
 * The UPGRADE plan of one clinic database, run by the provisioning engine: apply the
 * pending clinic migrations in one transaction with a lock timeout, then check the database.
 * Kept here, beside the rollout that runs it, so the provisioning engine can list it as its
 * UPGRADE plan (docs/decisions/047).
 */

import type { CentralPrisma } from '../../db/database.js';
import {
  appliedMigrations,
  MIGRATION_LOCK_KEY,
  type MigrateResult,
  type Migration,
  pendingMigrations,
  schemaVersion,
} from '../../db/migrator.js';
import { type IdentifiedServer, withServerClient } from '../../db/servers.js';
import { type ClinicHealth, grantClinicRole, type Plan } from '../provisioning/index.js';

/** What an UPGRADE run works on; `clinicId` and `clinicName` name its subject in events. */
export interface UpgradeState {
  clinicId: string;
  clinicName: string;
  /** The clinic's server: every session of the upgrade is checked to be on its cluster (097). */
  server: IdentifiedServer;
  databaseName: string;
  databaseRole: string;
  /** Migrations the run applied (none when the database was already current). */
  applied: string[];
  health?: ClinicHealth;
}

/** The state an UPGRADE run of clinic `clinicId` on `server` starts from: nothing applied yet. */
export function upgradeState(
  clinicId: string,
  clinic: { name: string; databaseName: string; databaseRole: string },
  server: IdentifiedServer,
): UpgradeState {
  return {
    clinicId,
    clinicName: clinic.name,
    server,
    databaseName: clinic.databaseName,
    databaseRole: clinic.databaseRole,
    applied: [],
  };
}

export interface UpgradeDeps {
  prisma: CentralPrisma;
  /** The clinic schema to bring the database to. */
  migrations: readonly Migration[];
  /** How long a statement of the upgrade may wait for a lock before the clinic counts as busy. */
  lockTimeoutMs: number;
  /** The clinic's health as the provisioning module checks it (records it too). */
  checkClinic(clinicId: string): Promise<ClinicHealth>;
}

/**
 * The clinic database is in use in a way the upgrade must not wait for (a lock held by another
 * session, another migrator on it): the rollout tries it again later.
 */
export class ClinicBusyError extends Error {
  override name = 'ClinicBusyError';
}

/** Whether an upgrade failed because the clinic was busy rather than broken. */
export function isBusy(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    if (cause instanceof ClinicBusyError) return true;
    // lock_not_available: lock_timeout expired (PostgreSQL error codes, appendix A).
    if ((cause as { code?: string }).code === '55P03') return true;
  }
  return false;
}

/**
 * Applies the pending migrations of the database at `url` in ONE transaction: on any failure
 * nothing is applied and the clinic stays on its version (the migrator's own loop commits each
 * migration apart, which would leave a clinic between versions). Each statement waits at most
 * `lockTimeoutMs` for a lock, so a busy clinic fails fast with lock_not_available instead of
 * queueing behind its sessions (and making them queue behind the upgrade).
 */
export async function upgradeDatabase(
  server: IdentifiedServer,
  database: string,
  migrations: readonly Migration[],
  lockTimeoutMs: number,
): Promise<MigrateResult> {
  return withServerClient(server, database, async (client) => {
    await client.query('BEGIN');
    try {
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(lockTimeoutMs))}`);
      // Serialised with every other migrator of this database (repair, registration), without waiting.
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_xact_lock($1) AS locked',
        [MIGRATION_LOCK_KEY],
      );
      if (!rows[0]?.locked) throw new ClinicBusyError('another migration of this database is under way');
      const pending = pendingMigrations(migrations, await appliedMigrations(client));
      for (const migration of pending) {
        await client.query(migration.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES (gen_random_uuid(), $1, now(), $2, now(), 1)`,
          [migration.checksum, migration.name],
        );
      }
      await client.query('COMMIT');
      return { applied: pending.map((migration) => migration.name), version: schemaVersion(migrations) };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    }
  });
}

/**
 * The UPGRADE plan: migrate_database, then verify_database. A busy clinic is tried again by the
 * rollout: its run ends FAILED ("will retry"), nothing undone.
 */
export function upgradePlan(deps: UpgradeDeps): Plan<UpgradeState> {
  return {
    kind: 'UPGRADE',
    suspendOn: (error) => isBusy(error),
    steps: [
      {
        name: 'migrate_database',
        // No undo: the transaction either committed every migration or none.
        async run(state) {
          const { applied, version } = await upgradeDatabase(
            state.server,
            state.databaseName,
            deps.migrations,
            deps.lockTimeoutMs,
          );
          state.applied = applied;
          if (applied.length > 0) await grantClinicRole(state.server, state.databaseName, state.databaseRole);
          await deps.prisma.clinic.update({
            where: { id: state.clinicId },
            data: { schemaVersion: version },
          });
          return { note: applied.length > 0 ? `applied ${applied.join(', ')}` : 'already current' };
        },
      },
      {
        name: 'verify_database',
        async run(state) {
          state.health = await deps.checkClinic(state.clinicId);
          if (state.health.dbStatus !== 'HEALTHY')
            throw new Error(`${state.health.dbStatus}: ${state.health.errors.join('; ')}`);
          return undefined;
        },
      },
    ],
  };
}
