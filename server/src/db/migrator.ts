/**
 * Applies SQL migrations kept in Prisma's folder layout (`migrations/<name>/migration.sql`).
 * Prisma's schema engine is not available here, so this does the part of `prisma migrate deploy`
 * Onramp needs, and records applied migrations in Prisma's own `_prisma_migrations` table with
 * the same sha256 checksums, so `prisma migrate status` agrees wherever the engine exists.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  /** Schema version after migrating (see {@link schemaVersion}). */
  version: string;
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/** Advisory-lock key shared by every Onramp process migrating the same database. */
export const MIGRATION_LOCK_KEY = 0x6f6e72616d70; // "onramp"

export function readMigrations(dir: string): Migration[] {
  if (!existsSync(dir)) throw new MigrationError(`migrations folder ${dir} does not exist`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const file = join(dir, name, 'migration.sql');
      if (!existsSync(file)) throw new MigrationError(`migration ${name} has no migration.sql`);
      const sql = readFileSync(file, 'utf8');
      return { name, sql, checksum: checksum(sql) };
    });
}

export function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

/**
 * A short, stable name for a list of migrations: their count and a digest of names and
 * checksums. Two databases with the same version have exactly the same migrations applied.
 */
export function schemaVersion(migrations: readonly Pick<Migration, 'name' | 'checksum'>[]): string {
  const digest = createHash('sha256');
  for (const migration of migrations) digest.update(`${migration.name}\0${migration.checksum}\n`);
  return `${migrations.length}-${digest.digest('hex').slice(0, 10)}`;
}

/**
 * Brings the database behind `client` up to date. Concurrent callers serialise on an advisory
 * lock, so each migration is applied once; each runs in its own transaction with its record.
 * @throws MigrationError when an applied migration was edited or removed, or one fails.
 */
export async function migrate(
  client: pg.ClientBase,
  migrations: readonly Migration[],
): Promise<MigrateResult> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL,
      "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL,
      "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0
    )`);
    const applied = await appliedMigrations(client);
    const pending = pendingMigrations(migrations, applied);

    for (const migration of pending) {
      await client.query('BEGIN');
      try {
        const startedAt = new Date();
        await client.query(migration.sql);
        await client.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, $4, 1)`,
          [randomUUID(), migration.checksum, migration.name, startedAt],
        );
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw new MigrationError(
          `migration ${migration.name} failed and was rolled back: ${error instanceof Error ? error.message : error}`,
          { cause: error },
        );
      }
    }
    return { applied: pending.map((migration) => migration.name), version: schemaVersion(migrations) };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => {});
  }
}

/** Applied migrations of a database, or [] when it has never been migrated. */
export async function appliedMigrations(
  client: pg.ClientBase,
): Promise<Pick<Migration, 'name' | 'checksum'>[]> {
  const table = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS exists`,
  );
  if (!table.rows[0]?.exists) return [];
  const { rows } = await client.query<{ migration_name: string; checksum: string; finished_at: Date | null }>(
    `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations"
     WHERE rolled_back_at IS NULL ORDER BY migration_name`,
  );
  const unfinished = rows.find((row) => row.finished_at === null);
  if (unfinished) {
    throw new MigrationError(
      `migration ${unfinished.migration_name} is recorded as started but never finished; ` +
        'repair the database by hand, then mark it rolled back',
    );
  }
  return rows.map((row) => ({ name: row.migration_name, checksum: row.checksum }));
}

/**
 * The migrations still to apply. Refuses a history that diverges from the files: an applied
 * migration must never change, because other databases already ran the old text.
 */
export function pendingMigrations(
  migrations: readonly Migration[],
  applied: readonly Pick<Migration, 'name' | 'checksum'>[],
): Migration[] {
  const byName = new Map(migrations.map((migration) => [migration.name, migration]));
  for (const done of applied) {
    const file = byName.get(done.name);
    if (!file) {
      throw new MigrationError(
        `migration ${done.name} is applied to the database but missing from the migrations folder; ` +
          'restore it (applied migrations are never deleted)',
      );
    }
    if (file.checksum !== done.checksum) {
      throw new MigrationError(
        `migration ${done.name} was edited after it was applied (recorded checksum ${done.checksum.slice(0, 12)}…, ` +
          `file now ${file.checksum.slice(0, 12)}…); revert the edit and put the change in a new migration`,
      );
    }
  }
  const done = new Set(applied.map((migration) => migration.name));
  const pending = migrations.filter((migration) => !done.has(migration.name));
  const lastApplied = applied.at(-1)?.name;
  const outOfOrder = lastApplied ? pending.find((migration) => migration.name < lastApplied) : undefined;
  if (outOfOrder) {
    throw new MigrationError(
      `migration ${outOfOrder.name} sorts before the already applied ${lastApplied}; rename it to run last`,
    );
  }
  return pending;
}
