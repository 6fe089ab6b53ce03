/**
 * Clinic database integrity: does the database exist, can the clinic's own role connect, are
 * all expected tables there and usable by that role, is it at the current schema version.
 */
import pg from 'pg';
import { decryptSecret } from '../../crypto.js';
import type { ClinicServer } from '../../db/database.js';
import {
  expectSameServer,
  ServerIdentityError,
  SYSTEM_IDENTIFIER_SQL,
  type UnreachableServer,
} from '../../db/servers.js';
import { databaseUrl } from '../../db/sql.js';
import { type ClinicSchemaShape, inspectClinicSchema } from './schema-shape.js';

export type DbStatus = 'HEALTHY' | 'DEGRADED' | 'UNHEALTHY' | 'MISSING' | 'PROVISIONING';

export interface ClinicHealth {
  clinicId: string;
  name: string;
  /** Name of the PostgreSQL server holding the database (never credentials). */
  server: string;
  /** False when no configured URL reaches that server right now (see `errors` for why). */
  serverReachable: boolean;
  subdomain: string;
  dbStatus: DbStatus;
  tablesCount: number;
  expectedTables: number;
  missingTables: string[];
  schemaVersion: string | null;
  errors: string[];
  lastCheck: Date;
}

/** The clinic columns a check needs. */
export interface ClinicRecord {
  id: string;
  name: string;
  subdomain: string;
  status: string;
  databaseName: string;
  databaseServerId: string;
  databaseRole: string;
  databasePasswordEnc: string | null;
}

/** The Prisma `select` of a {@link ClinicRecord}. */
export const CLINIC_RECORD_COLUMNS = {
  id: true,
  name: true,
  subdomain: true,
  status: true,
  databaseName: true,
  databaseServerId: true,
  databaseRole: true,
  databasePasswordEnc: true,
} as const satisfies Record<keyof ClinicRecord, true>;

export interface IntegrityContext {
  servers: ReadonlyMap<string, ClinicServer>;
  /** Recorded servers no configured URL reaches, and why (db/servers.ts). */
  unreachable: ReadonlyMap<string, UnreachableServer>;
  /** Every recorded server's name by id. */
  names: ReadonlyMap<string, string>;
  shape: ClinicSchemaShape;
  /** Current clinic schema version. */
  version: string;
  encryptionKey: Buffer;
  /** @default 3000 */
  connectTimeoutMs?: number;
}

/** URL of a clinic database as its own role. */
export function clinicRoleUrl(serverUrl: string, database: string, role: string, password: string): string {
  const url = new URL(databaseUrl(serverUrl, database));
  url.username = encodeURIComponent(role);
  url.password = encodeURIComponent(password);
  return url.toString();
}

export function clinicPassword(clinic: ClinicRecord, key: Buffer): string | null {
  if (!clinic.databasePasswordEnc) return null;
  try {
    return decryptSecret(clinic.databasePasswordEnc, key, clinic.id);
  } catch {
    return null;
  }
}

function report(
  clinic: ClinicRecord,
  ctx: IntegrityContext,
  fields: Partial<ClinicHealth> & Pick<ClinicHealth, 'dbStatus'>,
): ClinicHealth {
  return {
    clinicId: clinic.id,
    name: clinic.name,
    server: ctx.names.get(clinic.databaseServerId) ?? clinic.databaseServerId,
    serverReachable: ctx.servers.has(clinic.databaseServerId),
    subdomain: clinic.subdomain,
    tablesCount: 0,
    expectedTables: ctx.shape.tables.length,
    missingTables: [],
    schemaVersion: null,
    errors: [],
    lastCheck: new Date(),
    ...fields,
  };
}

/**
 * Which of `names` exist on the server: one catalog query for any number of clinics.
 * @throws ServerIdentityError when another cluster answers at its address (its catalog says
 *   nothing of these databases: none is MISSING there).
 */
export async function existingDatabases(server: ClinicServer, names: string[]): Promise<Set<string>> {
  if (names.length === 0) return new Set();
  const { rows } = await server.admin.query<{ names: string[]; systemIdentifier: string }>(
    `SELECT array(SELECT datname::text FROM pg_database WHERE datname = ANY($1)) AS names,
            ${SYSTEM_IDENTIFIER_SQL} AS "systemIdentifier"`,
    [names],
  );
  expectSameServer(server, rows[0]?.systemIdentifier);
  return new Set(rows[0]?.names ?? []);
}

/**
 * Checks one clinic. `exists` lets a caller that already asked the catalog skip that query.
 * Never throws: every failure becomes a status and a message.
 */
export async function checkClinicDatabaseIntegrity(
  clinic: ClinicRecord,
  ctx: IntegrityContext,
  exists?: boolean,
): Promise<ClinicHealth> {
  if (clinic.status === 'PROVISIONING' || clinic.status === 'PENDING' || clinic.status === 'DELETING') {
    return report(clinic, ctx, { dbStatus: 'PROVISIONING' });
  }
  const server = ctx.servers.get(clinic.databaseServerId);
  if (!server) {
    // Reported, never taken for a missing database: nothing may act on what cannot be seen.
    const unreachable = ctx.unreachable.get(clinic.databaseServerId);
    const name = ctx.names.get(clinic.databaseServerId) ?? clinic.databaseServerId;
    return report(clinic, ctx, {
      dbStatus: 'UNHEALTHY',
      errors: [`database server ${name} is unreachable: ${unreachable?.reason ?? 'not configured'}`],
    });
  }
  try {
    const present =
      exists ?? (await existingDatabases(server, [clinic.databaseName])).has(clinic.databaseName);
    if (!present) {
      return report(clinic, ctx, {
        dbStatus: 'MISSING',
        missingTables: ctx.shape.tables,
        errors: ['database does not exist'],
      });
    }
  } catch (error) {
    return report(clinic, ctx, {
      dbStatus: 'UNHEALTHY',
      // Another cluster at its address: not this clinic's server, so not reachable.
      ...(error instanceof ServerIdentityError ? { serverReachable: false } : {}),
      errors: [`database server unreachable: ${message(error)}`],
    });
  }

  const password = clinicPassword(clinic, ctx.encryptionKey);
  if (!password) {
    return report(clinic, ctx, {
      dbStatus: 'UNHEALTHY',
      errors: ['the clinic role password cannot be decrypted'],
    });
  }
  const client = new pg.Client({
    connectionString: clinicRoleUrl(server.url, clinic.databaseName, clinic.databaseRole, password),
    connectionTimeoutMillis: ctx.connectTimeoutMs ?? 3000,
    statement_timeout: 5000,
    application_name: 'onramp-health',
  });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    return report(clinic, ctx, {
      dbStatus: 'UNHEALTHY',
      errors: [`the clinic role cannot connect: ${message(error)}`],
    });
  }
  try {
    const found = await inspectClinicSchema(client, ctx.shape, ctx.version);
    return report(clinic, ctx, {
      dbStatus: found.errors.length > 0 ? 'DEGRADED' : 'HEALTHY',
      tablesCount: ctx.shape.tables.length - found.missingTables.length,
      ...found,
    });
  } catch (error) {
    return report(clinic, ctx, { dbStatus: 'UNHEALTHY', errors: [`check failed: ${message(error)}`] });
  } finally {
    await client.end().catch(() => {});
  }
}

function message(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).replace(/\s+/g, ' ').slice(0, 300);
}
