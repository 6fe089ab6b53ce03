/**
 * The shallow tier of clinic health (docs/decisions/051): one catalog query per clinic server
 * lists its databases and roles, and one query on the central database compares every clinic
 * of that server with them (and with what was recorded), so neither side walks the clinics one
 * by one in JavaScript. No connection to any clinic database is opened. Sizes are left out on
 * purpose: `pg_database_size` walks every file of a database, far too slow for every clinic
 * each sweep.
 */
import type { ClinicServer } from '../../db/database.js';
import { expectSameServer, SYSTEM_IDENTIFIER_SQL } from '../../db/servers.js';
import type { DbStatus } from '../provisioning/index.js';

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

/** A server's databases and roles, as parallel lists (they travel on as query parameters). */
export interface CatalogLists {
  databases: string[];
  /** `datallowconn` of each database (false once quarantined or closed by an operator). */
  allowsConnections: boolean[];
  roles: string[];
  /** `rolcanlogin` of each role. */
  canLogin: boolean[];
}

/**
 * Every database and role of `server`, in one statement.
 * @throws ServerIdentityError when another cluster answers at its address: its catalog says
 *   nothing of the clinics (they are reported unreachable, never MISSING).
 */
export async function readCatalogLists(server: ClinicServer): Promise<CatalogLists> {
  // pg_authid would need a superuser; pg_roles is the readable view of it.
  const { rows } = await server.admin.query<CatalogLists & { systemIdentifier: string }>(
    `SELECT d.databases, d."allowsConnections", r.roles, r."canLogin",
            ${SYSTEM_IDENTIFIER_SQL} AS "systemIdentifier"
       FROM (SELECT array_agg(datname::text) AS databases, array_agg(datallowconn) AS "allowsConnections"
               FROM pg_database) d,
            (SELECT array_agg(rolname::text) AS roles, array_agg(rolcanlogin) AS "canLogin" FROM pg_roles) r`,
  );
  const row = rows[0];
  expectSameServer(server, row?.systemIdentifier);
  return {
    databases: row?.databases ?? [],
    allowsConnections: row?.allowsConnections ?? [],
    roles: row?.roles ?? [],
    canLogin: row?.canLogin ?? [],
  };
}

/**
 * The central side of the comparison, for the clinics of server $1: each clinic's verdict from
 * the lists ($2–$5; $6 false when the server could not be read), and, unless $7 asks for every
 * clinic, only those whose verdict or status differs from the recorded one. One row: how many
 * clinics and how many PRESENT, and the clinics as JSON.
 */
export const COMPARE_WITH_CATALOG = `
  WITH d AS (SELECT * FROM unnest($2::text[], $3::boolean[]) AS d(name, allow)),
       r AS (SELECT * FROM unnest($4::text[], $5::boolean[]) AS r(name, login)),
       raw AS (
         SELECT c.id, c.database_role AS role, h.db_status AS recorded_status, h.shallow AS recorded_shallow,
                CASE WHEN c.status::text IN ('PROVISIONING', 'PENDING', 'DELETING') THEN 'PROVISIONING'
                     WHEN NOT $6::boolean THEN 'UNREACHABLE'
                     WHEN d.name IS NULL THEN 'MISSING'
                     WHEN r.name IS NULL THEN 'NO_ROLE'
                     WHEN NOT r.login THEN 'NO_LOGIN'
                     WHEN NOT d.allow THEN 'CLOSED'
                     ELSE 'PRESENT' END AS verdict
           FROM clinics c
           LEFT JOIN clinic_health h ON h.clinic_id = c.id
           LEFT JOIN d ON d.name = c.database_name
           LEFT JOIN r ON r.name = c.database_role
          WHERE c.database_server_id = $1::uuid),
       v AS (
         SELECT raw.*,
                CASE WHEN verdict IN ('NO_LOGIN', 'CLOSED') THEN 'NO_CONNECT' ELSE verdict END AS shallow,
                CASE verdict WHEN 'PRESENT' THEN NULL WHEN 'MISSING' THEN 'MISSING'
                             WHEN 'PROVISIONING' THEN 'PROVISIONING' ELSE 'UNHEALTHY' END AS status
           FROM raw)
  SELECT count(*)::int AS clinics, (count(*) FILTER (WHERE verdict = 'PRESENT'))::int AS present,
         coalesce(json_agg(json_build_object('id', id, 'role', role, 'verdict', verdict)) FILTER (
           WHERE $7::boolean OR shallow IS DISTINCT FROM recorded_shallow
              OR (shallow <> 'PRESENT' AND status IS DISTINCT FROM recorded_status)), '[]') AS found
    FROM v`;

/** A raw verdict of COMPARE_WITH_CATALOG: the recorded verdict, its status and its words. */
export function describeVerdict(
  raw: string,
  role: string,
  unreachable: string,
): { verdict: ShallowVerdict; dbStatus: DbStatus; errors: string[] } {
  switch (raw) {
    case 'PRESENT':
      return { verdict: 'PRESENT', dbStatus: 'HEALTHY', errors: [] };
    case 'PROVISIONING':
      return { verdict: 'PROVISIONING', dbStatus: 'PROVISIONING', errors: [] };
    case 'MISSING':
      return { verdict: 'MISSING', dbStatus: 'MISSING', errors: ['database does not exist'] };
    case 'NO_ROLE':
      return {
        verdict: 'NO_ROLE',
        dbStatus: 'UNHEALTHY',
        errors: [`the clinic role ${role} does not exist`],
      };
    case 'NO_LOGIN':
      return {
        verdict: 'NO_CONNECT',
        dbStatus: 'UNHEALTHY',
        errors: [`the clinic role ${role} may not log in`],
      };
    case 'CLOSED':
      return {
        verdict: 'NO_CONNECT',
        dbStatus: 'UNHEALTHY',
        errors: ['the database does not allow connections (datallowconn)'],
      };
    default:
      // Reported, never taken for a missing database: nothing may act on what cannot be seen.
      return { verdict: 'UNREACHABLE', dbStatus: 'UNHEALTHY', errors: [unreachable] };
  }
}
