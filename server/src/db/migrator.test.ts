import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, inject, it, onTestFinished } from 'vitest';
import { dropDatabase, tempDir } from '../../test/harness.js';
import { ensureDatabase } from './database.js';
import {
  checksum,
  type Migration,
  MigrationError,
  migrate,
  readMigrations,
  schemaVersion,
} from './migrator.js';
import { CENTRAL_MIGRATIONS_DIR } from './paths.js';
import { databaseUrl, withClient } from './sql.js';

/** An empty database (not cloned from the migrated template). */
async function emptyDatabase(): Promise<string> {
  const name = `migrator_${Math.random().toString(36).slice(2, 10)}`;
  await ensureDatabase(inject('pgAdminUrl'), name);
  onTestFinished(() => dropDatabase(name));
  return databaseUrl(inject('pgAdminUrl'), name);
}

function migration(name: string, sql: string): Migration {
  return { name, sql, checksum: checksum(sql) };
}

const first = migration(
  '20260101000000_first',
  'CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL);',
);
const second = migration('20260102000000_second', 'ALTER TABLE widgets ADD COLUMN colour text;');

describe('migrator', () => {
  it('applies the central migrations to a fresh database and records Prisma-compatible checksums', async () => {
    const url = await emptyDatabase();
    const migrations = readMigrations(CENTRAL_MIGRATIONS_DIR);
    const result = await withClient(url, (client) => migrate(client, migrations));
    expect(result.applied).toEqual(migrations.map((m) => m.name));
    expect(result.version).toBe(schemaVersion(migrations));

    const recorded = await withClient(url, async (client) => {
      const { rows } = await client.query(
        'SELECT migration_name, checksum, finished_at IS NOT NULL AS finished FROM "_prisma_migrations" ORDER BY 1',
      );
      const tables = await client.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
      );
      return { rows, tables: tables.rows.map((row) => row.table_name) };
    });
    expect(recorded.rows).toEqual(
      migrations.map((m) => ({ migration_name: m.name, checksum: m.checksum, finished: true })),
    );
    expect(recorded.tables).toEqual(
      expect.arrayContaining([
        'companies',
        'clinics',
        'users',
        'provisioning_runs',
        'provisioning_steps',
        'audit_log',
      ]),
    );
  });

  it('does nothing when run again, and applies only what is new', async () => {
    const url = await emptyDatabase();
    await withClient(url, async (client) => {
      expect((await migrate(client, [first])).applied).toEqual([first.name]);
      expect((await migrate(client, [first])).applied).toEqual([]);
      expect((await migrate(client, [first, second])).applied).toEqual([second.name]);
      const { rows } = await client.query('SELECT count(*)::int AS n FROM "_prisma_migrations"');
      expect(rows[0].n).toBe(2);
    });
  });

  it('refuses a migration edited after it was applied, naming it', async () => {
    const url = await emptyDatabase();
    await withClient(url, async (client) => {
      await migrate(client, [first]);
      const edited = migration(first.name, `${first.sql}\n-- sneaky edit`);
      const error = await migrate(client, [edited, second]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as Error).message).toMatch(
        /migration 20260101000000_first was edited after it was applied/,
      );
      // Nothing after the tampered one ran.
      const { rows } = await client.query(
        'SELECT to_regclass(\'widgets\') IS NOT NULL AS t, count(*)::int AS n FROM "_prisma_migrations"',
      );
      expect(rows[0]).toEqual({ t: true, n: 1 });
    });
  });

  it('refuses an applied migration that disappeared from the folder, and one that sorts before the last applied', async () => {
    const url = await emptyDatabase();
    await withClient(url, async (client) => {
      const later = migration('20260105000000_later', 'CREATE TABLE later (id int);');
      await migrate(client, [later]);
      await expect(migrate(client, [])).rejects.toThrow(
        /20260105000000_later is applied to the database but missing/,
      );
      await expect(migrate(client, [first, later])).rejects.toThrow(
        /20260101000000_first sorts before the already applied/,
      );
    });
  });

  it('rolls back a failing migration entirely and records nothing for it', async () => {
    const url = await emptyDatabase();
    const broken = migration(
      '20260103000000_broken',
      'CREATE TABLE half_made (id int); SELECT * FROM no_such_table;',
    );
    await withClient(url, async (client) => {
      await expect(migrate(client, [first, broken])).rejects.toThrow(
        /migration 20260103000000_broken failed and was rolled back/,
      );
      const { rows } = await client.query(
        `SELECT to_regclass('half_made') IS NULL AS gone, (SELECT array_agg(migration_name) FROM "_prisma_migrations") AS names`,
      );
      expect(rows[0]).toEqual({ gone: true, names: [first.name] });
    });
  });

  it('applies each migration once when eight processes migrate at the same time', async () => {
    const url = await emptyDatabase();
    // A migration that fails if it runs twice (no IF NOT EXISTS).
    const slow = migration('20260104000000_slow', 'SELECT pg_sleep(0.2); CREATE TABLE once_only (id int);');
    const results = await Promise.all(
      Array.from({ length: 8 }, () => withClient(url, (client) => migrate(client, [first, second, slow]))),
    );
    const appliedCounts = results.map((result) => result.applied.length).sort();
    expect(appliedCounts).toEqual([0, 0, 0, 0, 0, 0, 0, 3]);
    const { rows } = await withClient(url, (client) =>
      client.query(
        'SELECT migration_name, count(*)::int AS n FROM "_prisma_migrations" GROUP BY 1 ORDER BY 1',
      ),
    );
    expect(rows).toEqual([first, second, slow].map((m) => ({ migration_name: m.name, n: 1 })));
  });

  it('reads the Prisma folder layout in name order and rejects a folder without migration.sql', () => {
    const dir = tempDir('onramp-migrations-');
    mkdirSync(join(dir, '20260102_b'));
    writeFileSync(join(dir, '20260102_b', 'migration.sql'), 'SELECT 2;');
    mkdirSync(join(dir, '20260101_a'));
    writeFileSync(join(dir, '20260101_a', 'migration.sql'), 'SELECT 1;');
    writeFileSync(join(dir, 'migration_lock.toml'), 'provider = "postgresql"');
    expect(readMigrations(dir).map((m) => m.name)).toEqual(['20260101_a', '20260102_b']);
    mkdirSync(join(dir, '20260103_c'));
    expect(() => readMigrations(dir)).toThrow(/20260103_c has no migration.sql/);
  });

  it('names a schema version by count and content', () => {
    expect(schemaVersion([first])).toMatch(/^1-[0-9a-f]{10}$/);
    expect(schemaVersion([first, second])).not.toBe(
      schemaVersion([first, migration(second.name, 'SELECT 1;')]),
    );
  });
});
