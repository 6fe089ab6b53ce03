/**
 * The clinic template: a database migrated once to the current clinic schema, from which every
 * clinic database is cloned with CREATE DATABASE … TEMPLATE (docs/decisions/002). It is named
 * by the schema version, so a new clinic migration produces a new template and old ones go.
 * It is inspected as the clinic group role before it is marked a template and closed: the warm
 * pool's spares are closed copies of it, never opened before their claim (docs/decisions/093).
 */

import type pg from 'pg';
import type { Logger } from '../logger.js';
import { CLINIC_GROUP_ROLE, ensureGroupRole, grantGroupPrivileges } from '../modules/provisioning/admin.js';
import { clinicSchemaShape, inspectClinicSchema } from '../modules/provisioning/schema-shape.js';
import { dropObjects } from './drop.js';
import { type Migration, migrate, schemaVersion } from './migrator.js';
import { databaseUrl, quoteIdent, withClient } from './sql.js';

export const TEMPLATE_PREFIX = 'onramp_clinic_template_';

type Queryable = Pick<pg.ClientBase, 'query'>;

export interface ClinicTemplate {
  /** Database name on its server. */
  name: string;
  /** Clinic schema version the template is at. */
  version: string;
}

/** Serialises template builds of concurrent processes on the same server. */
const TEMPLATE_LOCK_KEY = 0x6f6e746d706c; // "ontmpl"

/**
 * Bumped when what a template holds besides the migrations changes (grants, settings), or what
 * was proven of it: f3 templates were inspected as the group role when built (decision 093).
 */
const TEMPLATE_FORMAT = 'f3';

export function templateName(version: string, prefix = TEMPLATE_PREFIX): string {
  return `${prefix}${TEMPLATE_FORMAT}_${version.replaceAll('-', '_')}`;
}

/**
 * Makes sure the server at `serverUrl` (an admin connection) has the template for `migrations`,
 * building it when missing. Cheap when it exists: one catalog query.
 *
 * Older templates are dropped except the newest previous one: during a rolling deploy, instances
 * still running the previous version keep cloning from it.
 */
export async function ensureClinicTemplate(
  serverUrl: string,
  migrations: readonly Migration[],
  logger: Logger,
  prefix = TEMPLATE_PREFIX,
): Promise<ClinicTemplate> {
  const version = schemaVersion(migrations);
  const name = templateName(version, prefix);
  return withClient(serverUrl, async (admin) => {
    await admin.query('SELECT pg_advisory_lock($1)', [TEMPLATE_LOCK_KEY]);
    try {
      // Newest first: OIDs grow as databases are created.
      const { rows } = await admin.query<{ datname: string; datistemplate: boolean }>(
        `SELECT datname, datistemplate FROM pg_database WHERE starts_with(datname, $1) ORDER BY oid DESC`,
        [prefix],
      );
      const current = rows.find((row) => row.datname === name);
      if (!current?.datistemplate) {
        const started = Date.now();
        // A build interrupted by a crash leaves a half-made database under the building name.
        const building = `${name}_building`;
        await dropObjects(admin, { database: building }, { kind: 'template', prefix });
        if (current) await dropTemplate(admin, name, prefix);
        await admin.query(`CREATE DATABASE ${quoteIdent(building)} TEMPLATE template0 ENCODING 'UTF8'`);
        await ensureGroupRole(admin);
        await withClient(databaseUrl(serverUrl, building), async (client) => {
          await migrate(client, migrations);
          // Nobody may create objects; clinic roles read and write data through the group.
          await client.query('REVOKE ALL ON SCHEMA public FROM PUBLIC');
          await grantGroupPrivileges(client);
          // As every clinic role will see it, once: what the warm pool's spares, its closed
          // copies, were each inspected for before (decision 093).
          await client.query(`SET ROLE ${quoteIdent(CLINIC_GROUP_ROLE)}`);
          const found = await inspectClinicSchema(client, clinicSchemaShape(migrations), version);
          await client.query('RESET ROLE');
          if (found.errors.length > 0)
            throw new Error(`clinic template ${name} failed its inspection: ${found.errors.join('; ')}`);
        });
        await admin.query(`ALTER DATABASE ${quoteIdent(building)} RENAME TO ${quoteIdent(name)}`);
        // Cloning needs the template to have no connections; forbidding them guarantees it.
        await admin.query(`ALTER DATABASE ${quoteIdent(name)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
        await admin.query(`REVOKE CONNECT ON DATABASE ${quoteIdent(name)} FROM PUBLIC`);
        logger.info({ template: name, ms: Date.now() - started }, 'clinic template built');
      }
      const others = rows.filter((row) => row.datname !== name);
      const previous = others.find((row) => row.datistemplate);
      for (const row of others) {
        if (row === previous) continue;
        await dropTemplate(admin, row.datname, prefix);
        logger.info({ template: row.datname }, 'outdated clinic template dropped');
      }
      return { name, version };
    } finally {
      await admin.query('SELECT pg_advisory_unlock($1)', [TEMPLATE_LOCK_KEY]).catch(() => {});
    }
  });
}

async function dropTemplate(admin: Queryable, name: string, prefix: string): Promise<void> {
  try {
    await admin.query(`ALTER DATABASE ${quoteIdent(name)} WITH IS_TEMPLATE false`);
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000') throw error; // already gone
  }
  await dropObjects(admin, { database: name }, { kind: 'template', prefix });
}
