/**
 * What a clinic database must contain, read from the clinic migrations: the expected tables, and
 * for each table the statements that create it (table, indexes, constraints), so a repair can
 * re-create a table someone dropped without touching the others' data.
 *
 * This relies on the migrations being plain DDL statements separated by `;` (as Prisma writes
 * them); a test checks the parsed shape against a real clone of the template.
 */
import type pg from 'pg';
import { type Migration, schemaVersion } from '../../db/migrator.js';

export interface ClinicSchemaShape {
  /** Tables every clinic database must have, sorted (Onramp's own `_prisma_migrations` included). */
  tables: string[];
  /** Statements re-creating `table` as the migrations left it, in migration order. */
  statementsFor(table: string): string[];
}

const IDENT = `"((?:[^"]|"")+)"`;
const CREATE_TABLE = new RegExp(String.raw`^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?${IDENT}`, 'i');
const DROP_TABLE = new RegExp(String.raw`^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?${IDENT}`, 'i');
const ALTER_TABLE = new RegExp(String.raw`^ALTER\s+TABLE\s+(?:ONLY\s+)?${IDENT}`, 'i');
const CREATE_INDEX = new RegExp(
  String.raw`^CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?${IDENT}\s+ON\s+(?:ONLY\s+)?${IDENT}`,
  'i',
);

export function clinicSchemaShape(migrations: readonly Migration[]): ClinicSchemaShape {
  const statements = new Map<string, string[]>();
  for (const migration of migrations) {
    for (const statement of splitStatements(migration.sql)) {
      const created = CREATE_TABLE.exec(statement)?.[1];
      const dropped = DROP_TABLE.exec(statement)?.[1];
      const altered = ALTER_TABLE.exec(statement)?.[1];
      const indexed = CREATE_INDEX.exec(statement)?.[2];
      if (created) statements.set(unquote(created), [statement]);
      else if (dropped) statements.delete(unquote(dropped));
      else {
        const table = altered ?? indexed;
        if (table) statements.get(unquote(table))?.push(statement);
      }
    }
  }
  return {
    tables: ['_prisma_migrations', ...statements.keys()].sort(),
    statementsFor: (table) => statements.get(table) ?? [],
  };
}

function unquote(identifier: string): string {
  return identifier.replaceAll('""', '"');
}

/** Splits on `;` outside quotes and comments; enough for migration DDL (no function bodies). */
export function splitStatements(sql: string): string[] {
  const out: string[] = [];
  let current = '';
  let quote: string | null = null;
  for (let i = 0; i < sql.length; i++) {
    const char = sql[i] as string;
    if (quote) {
      current += char;
      if (char === quote) quote = null;
      continue;
    }
    if (char === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? sql.length : end;
      current += '\n';
      continue;
    }
    if (char === "'" || char === '"') quote = char;
    if (char === ';') {
      if (current.trim()) out.push(current.trim());
      current = '';
      continue;
    }
    current += char;
  }
  if (current.trim()) out.push(current.trim());
  return out;
}

export interface SchemaInspection {
  missingTables: string[];
  /** Null when the migration history was not read (or is missing). */
  schemaVersion: string | null;
  /** What is wrong, in words; empty when the database is as expected. */
  errors: string[];
}

/**
 * What a clinic database holds, as seen by the session's current role (the clinic role, or the
 * group role the template is checked as when built): every expected table present and readable,
 * and the migration history at `version`. `version: null` skips the history: a claimed warm
 * spare is a closed copy of the template, whose history was read when it was built, and a claim
 * changes only its name and grants (warm-pool.ts, docs/decisions/093).
 */
export async function inspectClinicSchema(
  client: Pick<pg.ClientBase, 'query'>,
  shape: ClinicSchemaShape,
  version: string | null,
): Promise<SchemaInspection> {
  // pg_class, not information_schema: the latter hides tables the role has no grant on.
  const { rows: tables } = await client.query<{ name: string; usable: boolean }>(
    `SELECT c.relname AS name,
            has_table_privilege(current_user, c.oid, 'SELECT') AS usable
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')`,
  );
  const present = new Map(tables.map((table) => [table.name, table.usable]));
  const missingTables = shape.tables.filter((table) => !present.has(table));
  const errors: string[] = [];
  const unusable = shape.tables.filter((table) => present.get(table) === false);
  if (unusable.length > 0) errors.push(`the clinic role cannot read ${unusable.join(', ')}`);

  let found: string | null = null;
  if (version !== null && present.get('_prisma_migrations')) {
    const { rows } = await client.query<{ name: string; checksum: string }>(
      `SELECT migration_name AS name, checksum FROM "_prisma_migrations"
        WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name`,
    );
    found = schemaVersion(rows);
    if (found !== version) errors.push(`schema version ${found}, expected ${version}`);
  }
  if (missingTables.length > 0) errors.unshift(`missing tables: ${missingTables.join(', ')}`);
  return { missingTables, schemaVersion: found, errors };
}
