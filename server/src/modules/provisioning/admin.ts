/**
 * SQL that creates, grants and drops clinic databases and roles on a clinic server. Every
 * identifier is quoted; passwords are random base64url and still passed as escaped literals.
 * Each operation is idempotent so a step can be retried or undone after a partial failure.
 */
import type pg from 'pg';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Longest a clinic role may hold connections open; the client cache uses 1–2. */
const ROLE_CONNECTION_LIMIT = 10;

export function quoteLiteral(value: string): string {
  if (value.includes('\0')) throw new Error('literal contains NUL');
  return `'${value.replaceAll("'", "''")}'`;
}

export async function databaseExists(admin: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

export async function roleExists(admin: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/** Creates the role, or resets its password when it already exists (a retry or a repair). */
export async function ensureRole(
  admin: Queryable,
  role: string,
  password: string,
): Promise<'created' | 'updated'> {
  const options = `LOGIN PASSWORD ${quoteLiteral(password)} CONNECTION LIMIT ${ROLE_CONNECTION_LIMIT} NOCREATEDB NOCREATEROLE NOINHERIT`;
  try {
    await admin.query(`CREATE ROLE ${quoteIdent(role)} ${options}`);
    return 'created';
  } catch (error) {
    if ((error as { code?: string }).code !== '42710') throw error; // duplicate_object
    await admin.query(`ALTER ROLE ${quoteIdent(role)} ${options}`);
    return 'updated';
  }
}

export async function cloneDatabase(admin: Queryable, name: string, template: string): Promise<void> {
  await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
}

/**
 * Only the clinic's role may connect; inside, it may read and write data but not change the
 * schema or the migration history (the admin connection owns both).
 */
export async function grantClinicRole(serverUrl: string, database: string, role: string): Promise<void> {
  await withClient(serverUrl, async (admin) => {
    await admin.query(`REVOKE ALL ON DATABASE ${quoteIdent(database)} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}`);
  });
  await withClient(databaseUrl(serverUrl, database), async (client) => {
    const r = quoteIdent(role);
    await client.query(`GRANT USAGE ON SCHEMA public TO ${r}`);
    await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${r}`);
    await client.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${r}`);
    await client.query(`REVOKE INSERT, UPDATE, DELETE ON "_prisma_migrations" FROM ${r}`);
    // Tables added later by migrations (run by the admin connection) get the same grants.
    await client.query(
      `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${r}`,
    );
    await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${r}`);
  });
}

/** The comment that marks a clinic database or role as this deployment's own. */
export function ownerTag(deploymentId: string): string {
  return `onramp:${deploymentId}`;
}

/** Tags the database and role so this deployment (and only it) may ever sweep them as orphans. */
export async function tagClinicObjects(
  admin: Queryable,
  deploymentId: string,
  database: string,
  role: string,
): Promise<void> {
  const tag = quoteLiteral(ownerTag(deploymentId));
  await admin.query(`COMMENT ON DATABASE ${quoteIdent(database)} IS ${tag}`);
  await admin.query(`COMMENT ON ROLE ${quoteIdent(role)} IS ${tag}`);
}

/** Drops the database (closing its connections) and then the role; missing ones are fine. */
export async function dropClinicObjects(
  serverUrl: string,
  database: string | null,
  role: string | null,
): Promise<void> {
  await withClient(serverUrl, async (admin) => {
    if (database) await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
    if (role) {
      // Its grants lived in the dropped database; DROP OWNED clears any left in this one, which
      // would otherwise block DROP ROLE.
      await admin.query(`DROP OWNED BY ${quoteIdent(role)}`).catch(ignoreMissingRole);
      await admin.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`);
    }
  });
}

function ignoreMissingRole(error: unknown): void {
  if ((error as { code?: string }).code !== '42704') throw error; // undefined_object
}
