import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { readMigrations } from '../../db/migrator.js';
import { CLINIC_MIGRATIONS_DIR } from '../../db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import { clinicSchemaShape, splitStatements } from './schema-shape.js';

const admin = inject('pgAdminUrl');

describe('clinic health', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '1',
    CLINIC_HEALTH_CONCURRENCY: '3',
    // Each clinic deeply checked every 2 s: the background DEGRADED test below needs a deep check.
    CLINIC_DEEP_CHECK_PERIOD: '2s',
  });
  const { provisioning, db } = t.app.deps;
  const ids: string[] = [];
  for (let i = 0; i < 9; i++) {
    ids.push((await createClinic(t, { clinicName: `Checked ${i}`, country: 'FR' })).clinicId);
  }

  it('checks every clinic with at most CLINIC_HEALTH_CONCURRENCY probe connections at once', async () => {
    // PostgreSQL 18 lists a backend while it authenticates, before it has a database or a name:
    // such a backend counts as a probe when the same backend (pid and start) is later seen as one.
    const samples: { id: string; probe: boolean }[][] = [];
    let sampling = true;
    const sampler = withClient(admin, async (client) => {
      while (sampling) {
        const { rows } = await client.query<{ id: string; probe: boolean }>(
          `SELECT pid || ' ' || backend_start AS id, (application_name = 'onramp-health' AND datname LIKE 'clinic\\_checked\\_%') AS probe
             FROM pg_stat_activity WHERE backend_type = 'client backend'`,
        );
        samples.push(rows);
      }
    });
    const reports = [];
    for (let i = 0; i < 3; i++) reports.push(await provisioning.clinicsHealth());
    sampling = false;
    await sampler;
    const probes = new Set(samples.flat().flatMap((backend) => (backend.probe ? [backend.id] : [])));
    const peak = Math.max(
      ...samples.map((sample) => sample.filter((backend) => probes.has(backend.id)).length),
    );
    const report = reports[2];
    expect(
      report?.clinics.filter((c) => ids.includes(c.clinicId)).every((c) => c.dbStatus === 'HEALTHY'),
    ).toBe(true);
    expect(report?.total).toBeGreaterThanOrEqual(9);
    expect(peak).toBeGreaterThan(0); // the sampler saw the probes at all
    expect(peak).toBeLessThanOrEqual(3);
  });

  it('counts healthy and unhealthy clinics, and finds a missing database with one catalog query', async () => {
    const victim = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[0] as string } });
    await provisioning.clients.evict(victim.id);
    await withClient(admin, (c) => c.query(`DROP DATABASE ${quoteIdent(victim.databaseName)} WITH (FORCE)`));
    const report = await provisioning.clinicsHealth();
    const mine = report.clinics.filter((c) => ids.includes(c.clinicId));
    expect(mine.find((c) => c.clinicId === victim.id)).toMatchObject({
      dbStatus: 'MISSING',
      errors: ['database does not exist'],
    });
    expect(report.unhealthy).toBeGreaterThanOrEqual(1);
    expect(report.healthy + report.unhealthy).toBeLessThanOrEqual(report.total);
    await provisioning.repairClinic(victim.id);
  });

  it("names each clinic's server and subdomain in clinicsHealth, for the console's table", async () => {
    const { body } = await t.gql<{
      clinicsHealth: { clinics: { clinicId: string; server: string; subdomain: string }[] };
    }>('{ clinicsHealth { clinics { clinicId server subdomain } } }', {}, await t.superAdmin());
    const records = await db.prisma.clinic.findMany({ where: { id: { in: ids } } });
    expect(records).toHaveLength(9);
    for (const record of records) {
      const row = body.data?.clinicsHealth.clinics.find((c) => c.clinicId === record.id);
      expect(row).toEqual({
        clinicId: record.id,
        server: t.app.deps.provisioning.serverName(record.databaseServerId),
        subdomain: record.subdomain,
      });
      expect(row?.server).toMatch(/^[^@/]+:\d+$/); // host:port, never credentials
    }
  });

  it('publishes clinicHealthChanged over WebSocket when the background sweep sees a status change', async () => {
    const client = t.ws({ connectionParams: await t.superAdmin() });
    const target = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[1] as string } });
    const changed = new Promise<{ clinicId: string; dbStatus: string; missingTables: string[] }>(
      (resolve, reject) => {
        client.subscribe<{
          clinicHealthChanged: { clinicId: string; dbStatus: string; missingTables: string[] };
        }>(
          { query: 'subscription { clinicHealthChanged { clinicId dbStatus missingTables lastCheck } }' },
          {
            next: ({ data }) => {
              if (data?.clinicHealthChanged.clinicId === target.id) resolve(data.clinicHealthChanged);
            },
            error: reject,
            complete: () => {},
          },
        );
      },
    );
    await provisioning.clinicsHealth(); // the sweep knows the clinic as HEALTHY
    await withClient(databaseUrl(admin, target.databaseName), (c) => c.query('DROP TABLE settings'));
    // No call here: the 1-second background sweep must notice on its own.
    expect(await changed).toMatchObject({
      clinicId: target.id,
      dbStatus: 'DEGRADED',
      missingTables: ['settings'],
    });
  });
});

describe('the clinic schema shape', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { clinicId } = await createClinic(t, {
    clinicName: 'Shape',
    country: 'FR',
  });

  it('lists exactly the tables of a real clinic database', async () => {
    const shape = clinicSchemaShape(readMigrations(CLINIC_MIGRATIONS_DIR));
    const clinic = await t.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const present = await withClient(databaseUrl(admin, clinic.databaseName), async (client) =>
      (
        await client.query<{ name: string }>(
          `SELECT table_name AS name FROM information_schema.tables
            WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
        )
      ).rows.map((row) => row.name),
    );
    expect(shape.tables).toEqual(present);
    expect(shape.tables).toEqual([
      '_prisma_migrations',
      'appointments',
      'availability',
      'healthcare_providers',
      'patients',
      'settings',
    ]);
    expect(shape.statementsFor('appointments').map((s) => s.split(/\s+/).slice(0, 3).join(' '))).toEqual([
      'CREATE TABLE "appointments"',
      'CREATE INDEX "appointments_provider_id_starts_at_idx"',
      'CREATE INDEX "appointments_patient_id_starts_at_idx"',
    ]);
  });

  it('splits statements outside quotes and comments', () => {
    expect(splitStatements(`-- a; comment\nCREATE TABLE "a;b" (x text DEFAULT ';');\nSELECT 1;`)).toEqual([
      `CREATE TABLE "a;b" (x text DEFAULT ';')`,
      'SELECT 1',
    ]);
  });
});
