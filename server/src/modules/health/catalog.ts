/**
 * The shallow tier of clinic health (docs/decisions/051): one catalog query per clinic server
 * tells, for every clinic on it at once, whether its database and role exist and may be
 * connected to. No connection to any clinic database is opened. Sizes are left out on purpose:
 * `pg_database_size` walks every file of a database, far too slow for every clinic each sweep.
 */
import type { ClinicServer } from '../../db/database.js';

/**
 * What a server's catalog says of one clinic. PRESENT hands the verdict to the deep check;
 * every other value is a verdict of its own.
 */
export type ShallowVerdict =
  | 'PRESENT'
  | 'MISSING'
  | 'NO_ROLE'
  | 'NO_CONNECT'
  | 'UNREACHABLE'
  | 'PROVISIONING';

export interface CatalogEntry {
  database: string;
  role: string;
}

export interface CatalogRow {
  /** The database exists. */
  database: boolean;
  /** `datallowconn` of the database (false once quarantined or closed by an operator). */
  allowsConnections: boolean;
  /** The role exists and may log in. */
  roleCanLogin: boolean;
  role: boolean;
}

/**
 * Reads the catalog of `server` for every entry in one statement.
 * @returns the rows by database name.
 */
export async function readCatalog(
  server: ClinicServer,
  entries: readonly CatalogEntry[],
): Promise<Map<string, CatalogRow>> {
  const found = new Map<string, CatalogRow>();
  if (entries.length === 0) return found;
  const { rows } = await server.admin.query<{
    db: string;
    present: boolean;
    allow: boolean | null;
    has_role: boolean;
    can_login: boolean | null;
  }>(
    // pg_authid would need a superuser; pg_roles is the readable view of it.
    `SELECT w.db, d.oid IS NOT NULL AS present, d.datallowconn AS allow,
            r.oid IS NOT NULL AS has_role, r.rolcanlogin AS can_login
       FROM unnest($1::text[], $2::text[]) AS w(db, role)
       LEFT JOIN pg_database d ON d.datname = w.db
       LEFT JOIN pg_roles r ON r.rolname = w.role`,
    [entries.map((entry) => entry.database), entries.map((entry) => entry.role)],
  );
  for (const row of rows)
    found.set(row.db, {
      database: row.present,
      allowsConnections: row.allow === true,
      role: row.has_role,
      roleCanLogin: row.can_login === true,
    });
  return found;
}

/** The verdict of a catalog row, with what it means in words for the clinic's `errors`. */
export function verdictOf(
  row: CatalogRow | undefined,
  role: string,
): { verdict: ShallowVerdict; errors: string[] } {
  if (!row?.database) return { verdict: 'MISSING', errors: ['database does not exist'] };
  if (!row.role) return { verdict: 'NO_ROLE', errors: [`the clinic role ${role} does not exist`] };
  if (!row.roleCanLogin) return { verdict: 'NO_CONNECT', errors: [`the clinic role ${role} may not log in`] };
  if (!row.allowsConnections)
    return { verdict: 'NO_CONNECT', errors: ['the database does not allow connections (datallowconn)'] };
  return { verdict: 'PRESENT', errors: [] };
}
