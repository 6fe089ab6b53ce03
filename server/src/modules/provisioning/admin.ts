/**
 * SQL that creates and grants clinic databases and roles (drops go through db/drop.ts only) on a clinic server. Every
 * identifier is quoted; passwords are random base64url and still passed as escaped literals.
 * Each operation is idempotent so a step can be retried or undone after a partial failure.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { type IdentifiedServer, withServerClient } from '../../db/servers.js';
import { quoteIdent } from '../../db/sql.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Longest a clinic role may hold connections open; the client cache uses 1–2. */
const ROLE_CONNECTION_LIMIT = 10;

/**
 * NOLOGIN group role holding the table privileges inside every clinic database (granted once,
 * in the template, so clones carry them). Clinic roles are members; what keeps clinic A out of
 * clinic B is CONNECT, granted per database to that clinic's own role only.
 */
export const CLINIC_GROUP_ROLE = 'onramp_clinic_rw';

export async function ensureGroupRole(admin: Queryable): Promise<void> {
  try {
    await admin.query(`CREATE ROLE ${quoteIdent(CLINIC_GROUP_ROLE)} NOLOGIN`);
  } catch (error) {
    const code = (error as { code?: string }).code;
    // duplicate_object, or unique_violation when two servers' first starts race.
    if (code !== '42710' && code !== '23505') throw error;
  }
}

/** Data privileges for the group inside one database; also used for tables added later. */
export async function grantGroupPrivileges(client: Queryable): Promise<void> {
  const g = quoteIdent(CLINIC_GROUP_ROLE);
  await client.query(`GRANT USAGE ON SCHEMA public TO ${g}`);
  await client.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${g}`);
  await client.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${g}`);
  await client.query(`REVOKE INSERT, UPDATE, DELETE ON "_prisma_migrations" FROM ${g}`);
  // Tables that later migrations (run by this admin) create get the same grants.
  await client.query(
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${g}`,
  );
  await client.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ${g}`);
}

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

/**
 * The SCRAM-SHA-256 secret PostgreSQL stores for `password`, computed here with ONE iteration.
 * Iterations slow down guessing a password from a stolen secret; a clinic role's password is
 * 256 random bits (secrets.ts), which no number of guesses finds, so the 4096 of the default
 * bought nothing and cost every clinic connection and every role creation a PBKDF2 of 4096 rounds
 * on each side (docs/decisions/055). The plaintext never reaches the server either.
 * Only for passwords from `randomPassword()`: a password a person chose needs the default.
 */
export function scramSecret(password: string, salt = randomBytes(16)): string {
  const iterations = 1;
  // PBKDF2 with one iteration is HMAC(password, salt ‖ INT(1)).
  const salted = createHmac('sha256', password)
    .update(Buffer.concat([salt, Buffer.from([0, 0, 0, 1])]))
    .digest();
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const b64 = (buffer: Buffer) => buffer.toString('base64');
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

/** `verb` (CREATE or ALTER) of the clinic role with its options, then its group membership. */
function roleSql(verb: 'CREATE' | 'ALTER', role: string, password: string): string {
  return `${verb} ROLE ${quoteIdent(role)} LOGIN PASSWORD ${quoteLiteral(scramSecret(password))} CONNECTION LIMIT ${ROLE_CONNECTION_LIMIT} NOCREATEDB NOCREATEROLE INHERIT; GRANT ${quoteIdent(CLINIC_GROUP_ROLE)} TO ${quoteIdent(role)}`;
}

/**
 * SQL that creates the clinic role, a member of the group, for a message of its own
 * (`ensureRole`) or ahead of a claim's rename (`WarmPool.claim`): a multi-statement message is one
 * implicit transaction, so a role that exists already (42710) leaves nothing half-done.
 * `password` comes from `randomPassword()` (see `scramSecret`).
 */
export function clinicRoleSql(role: string, password: string): string {
  return roleSql('CREATE', role, password);
}

/**
 * Creates the role, or resets its password when it already exists (a retry or a repair).
 * `password` comes from `randomPassword()` (see `scramSecret`). One message when the role is new
 * (`clinicRoleSql`), and the reset that follows a duplicate is one message too.
 */
export async function ensureRole(
  admin: Queryable,
  role: string,
  password: string,
): Promise<'created' | 'updated'> {
  try {
    await admin.query(clinicRoleSql(role, password));
    return 'created';
  } catch (error) {
    if ((error as { code?: string }).code !== '42710') throw error; // duplicate_object
  }
  await admin.query(roleSql('ALTER', role, password));
  return 'updated';
}

/** SQL: only the clinic's own role may connect to its database. */
function connectGrants(database: string, role: string): string {
  return `REVOKE ALL ON DATABASE ${quoteIdent(database)} FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE ${quoteIdent(database)} TO ${quoteIdent(role)}`;
}

/** Only the clinic's own role may connect to its database. */
export async function grantConnect(admin: Queryable, database: string, role: string): Promise<void> {
  await admin.query(connectGrants(database, role));
}

/** `closed`: born closed to connections, as the warm pool's spares are (decision 093). */
export async function cloneDatabase(
  admin: Queryable,
  name: string,
  template: string,
  { closed = false } = {},
): Promise<void> {
  await admin.query(
    `CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}${closed ? ' ALLOW_CONNECTIONS false' : ''}`,
  );
}

/**
 * Restores every grant of a clinic (repair, upgrades): CONNECT for its role, membership of the
 * group, and the group's privileges on every table, including tables created since.
 * The role may read and write data, never change the schema or the migration history.
 */
export async function grantClinicRole(
  server: IdentifiedServer,
  database: string,
  role: string,
): Promise<void> {
  await withServerClient(server, undefined, async (admin) => {
    await ensureGroupRole(admin);
    await grantConnect(admin, database, role);
    await admin.query(`GRANT ${quoteIdent(CLINIC_GROUP_ROLE)} TO ${quoteIdent(role)}`);
  });
  await withServerClient(server, database, grantGroupPrivileges);
}

/** The comment that marks a clinic database or role as this deployment's own. */
export function ownerTag(deploymentId: string): string {
  return `onramp:${deploymentId}`;
}

/** SQL: tags the database and role so this deployment (and only it) may ever sweep them as orphans. */
function ownerTags(deploymentId: string, database: string, role: string): string {
  const tag = quoteLiteral(ownerTag(deploymentId));
  return `COMMENT ON DATABASE ${quoteIdent(database)} IS ${tag}; COMMENT ON ROLE ${quoteIdent(role)} IS ${tag}`;
}

/** Tags the database and role so this deployment (and only it) may ever sweep them as orphans. */
export async function tagClinicObjects(
  admin: Queryable,
  deploymentId: string,
  database: string,
  role: string,
): Promise<void> {
  await admin.query(ownerTags(deploymentId, database, role));
}

/**
 * SQL of a new clinic database's grants (CONNECT for its role only) and owner tags, to send as
 * one message (`grantConnect` + `tagClinicObjects` in one round trip), or after a claim's rename
 * (`WarmPool.claim`). The role must exist.
 */
export function clinicDatabaseGrants(deploymentId: string, database: string, role: string): string {
  return `${connectGrants(database, role)}; ${ownerTags(deploymentId, database, role)}`;
}
