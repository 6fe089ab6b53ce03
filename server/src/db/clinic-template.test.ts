import { describe, expect, inject, it } from 'vitest';
import { createLogger } from '../logger.js';
import { ensureClinicTemplate, templateName } from './clinic-template.js';
import { checksum, type Migration, readMigrations, schemaVersion } from './migrator.js';
import { CLINIC_MIGRATIONS_DIR } from './paths.js';
import { databaseUrl, quoteIdent, withClient } from './sql.js';

const logger = createLogger({ env: 'test', logLevel: 'silent' });
// Own prefix: the shared test server's real clinic template must stay untouched.
const PREFIX = 'tpltest_';

function extra(name: string): Migration {
  const sql = `CREATE TABLE ${name} (id int);`;
  return { name: `20990101000000_${name}`, sql, checksum: checksum(sql) };
}

async function templates(admin: string) {
  const { rows } = await withClient(admin, (client) =>
    client.query<{ datname: string; datistemplate: boolean; datallowconn: boolean; oid: number }>(
      'SELECT datname, datistemplate, datallowconn, oid::int FROM pg_database WHERE starts_with(datname, $1) ORDER BY oid',
      [PREFIX],
    ),
  );
  return rows;
}

describe('the clinic template', () => {
  const admin = inject('pgAdminUrl');
  const base = readMigrations(CLINIC_MIGRATIONS_DIR);

  it('is built once, named by the schema version, closed to connections and clonable', async () => {
    const template = await ensureClinicTemplate(admin, base, logger, PREFIX);
    expect(template.name).toBe(templateName(template.version, PREFIX));
    const [built] = await templates(admin);
    expect(built).toMatchObject({ datname: template.name, datistemplate: true, datallowconn: false });

    await ensureClinicTemplate(admin, base, logger, PREFIX);
    expect((await templates(admin))[0]?.oid).toBe(built?.oid); // not rebuilt

    const clone = `tpl_clone_${Date.now()}`;
    await withClient(admin, (client) =>
      client.query(`CREATE DATABASE ${quoteIdent(clone)} TEMPLATE ${quoteIdent(template.name)}`),
    );
    try {
      const tables = await withClient(databaseUrl(admin, clone), async (client) =>
        (
          await client.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
          )
        ).rows.map((row) => row.table_name),
      );
      expect(tables).toEqual([
        '_prisma_migrations',
        'appointments',
        'availability',
        'healthcare_providers',
        'patients',
        'settings',
      ]);
    } finally {
      await withClient(admin, (client) => client.query(`DROP DATABASE ${quoteIdent(clone)} WITH (FORCE)`));
    }
  });

  it('is rebuilt under a new name when a migration is added, keeping only the previous version', async () => {
    const v1 = await ensureClinicTemplate(admin, base, logger, PREFIX);
    const v2 = await ensureClinicTemplate(admin, [...base, extra('second')], logger, PREFIX);
    expect(v2.name).not.toBe(v1.name);
    expect((await templates(admin)).map((row) => row.datname)).toEqual([v1.name, v2.name]);

    const v3 = await ensureClinicTemplate(admin, [...base, extra('second'), extra('third')], logger, PREFIX);
    expect((await templates(admin)).map((row) => row.datname)).toEqual([v2.name, v3.name]);
  });

  it('is inspected as the clinic group role before it is marked a template', async () => {
    // A table the shape expects in public, made elsewhere: the group role does not see it there.
    const sql =
      'CREATE SCHEMA "elsewhere"; SET search_path TO "elsewhere"; CREATE TABLE "hidden" (id int); RESET search_path;';
    const hidden: Migration = { name: '20990101000001_hidden', sql, checksum: checksum(sql) };
    const migrations = [...base, hidden];
    await expect(ensureClinicTemplate(admin, migrations, logger, PREFIX)).rejects.toThrow(
      /failed its inspection: missing tables: hidden/,
    );
    const target = templateName(schemaVersion(migrations), PREFIX);
    expect((await templates(admin)).filter((row) => row.datname === target)).toEqual([]);
  });

  it('recovers from a build interrupted halfway', async () => {
    const migrations = [...base, extra('interrupted')];
    const target = templateName(schemaVersion(migrations), PREFIX);
    await withClient(admin, (client) => client.query(`CREATE DATABASE ${quoteIdent(`${target}_building`)}`));
    const rebuilt = await ensureClinicTemplate(admin, migrations, logger, PREFIX);
    expect(rebuilt.name).toBe(target);
    expect((await templates(admin)).some((row) => row.datname.endsWith('_building'))).toBe(false);
  });
});
