import { describe, expect, inject, it } from 'vitest';
import { startExtraPostgres, startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { mapLimit } from '../../concurrency.js';
import { ensureClinicTemplate } from '../../db/clinic-template.js';
import { checksum, type Migration } from '../../db/migrator.js';
import { serverAddress } from '../../db/servers.js';
import { quoteIdent, withClient } from '../../db/sql.js';
import { createLogger } from '../../logger.js';
import { upgradePlan, upgradeState } from '../rollouts/steps.js';
import { clinicSubject } from './engine/events.js';
import { clinicPassword, clinicRoleUrl } from './integrity.js';
import { ProvisioningService } from './service.js';

const logger = createLogger({ env: 'test', logLevel: 'silent' });
const admin = inject('pgAdminUrl');

// A second PostgreSQL server: clinics are placed across both.
const other = await startExtraPostgres();

describe('placement over two servers', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: `${admin},${other.url}`,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db } = t.app.deps;

  it('puts each new clinic on the server with the fewest clinics and records the choice', async () => {
    const placed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { clinicId } = await createClinic(t, { clinicName: `Placed ${i}`, country: 'DE' });
      const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
      const server = db.clinicServers.find((s) => s.id === clinic.databaseServerId);
      placed.push(server?.address ?? 'unknown');
      if (!server) throw new Error('unknown server');
      const exists = await withClient(
        server.url,
        async (c) =>
          (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [clinic.databaseName])).rowCount,
      );
      expect(exists).toBe(1);
      expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    }
    expect(placed).toEqual([
      serverAddress(admin),
      serverAddress(other.url),
      serverAddress(admin),
      serverAddress(other.url),
    ]);
  });
});

describe('the warm pool', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: other.url,
    CLINIC_POOL_SIZE: '2',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning } = t.app.deps;
  const spares = () =>
    withClient(
      other.url,
      async (c) =>
        (await c.query("SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'onramp\\_spare\\_%'"))
          .rows[0].n,
    );

  it('keeps spares cloned, hands one out by rename, falls back to cloning when empty, and refills', async () => {
    await provisioning.pool.idle();
    expect(await spares()).toBe(2);
    const notes: string[] = [];
    const iterator = t.app.deps.events.pubsub.subscribe('provisioning');
    const collecting = (async () => {
      for await (const event of iterator) {
        if (event.step === 'create_database' && event.status === 'SUCCEEDED' && event.message)
          notes.push(event.message);
        if (notes.length === 3) break;
      }
    })();
    const results = await Promise.all(
      [1, 2, 3].map((i) => createClinic(t, { clinicName: `Pooled ${i}`, country: 'FR' })),
    );
    await collecting;
    expect(results).toHaveLength(3);
    expect(notes.filter((note) => note === 'claimed a warm spare').length).toBeGreaterThanOrEqual(1);
    expect(
      notes.every((note) => note === 'claimed a warm spare' || note === 'cloned from the template'),
    ).toBe(true);
    for (const { clinicId } of results)
      expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    await provisioning.pool.idle();
    expect(await spares()).toBe(2);
  });
});

describe('clinic schema upgrades', async () => {
  // No pool here: the warm-pool test above owns the spares on this server.
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: other.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { db } = t.app.deps;

  it('migrates 20 clinic databases to a new clinic migration, reporting a broken one without stopping', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      ids.push((await createClinic(t, { clinicName: `Upgrade ${i}`, country: 'FR' })).clinicId);
    }
    const sql =
      'CREATE TABLE "invoices" ("id" UUID NOT NULL DEFAULT gen_random_uuid(), "amount_cents" INTEGER NOT NULL, CONSTRAINT "invoices_pkey" PRIMARY KEY ("id"));';
    const added: Migration = { name: '20991231000000_invoices', sql, checksum: checksum(sql) };
    const migrations = [...db.clinicMigrations, added];
    const server = db.clinicServers[0];
    if (!server) throw new Error('no server');
    const template = await ensureClinicTemplate(server.url, migrations, logger);
    const upgraded = new ProvisioningService({
      ...t.app.deps,
      db: {
        ...db,
        clinicMigrations: migrations,
        clinicServers: [{ ...server, template }],
        servers: { ...db.servers, byId: new Map([[server.id, { ...server, template }]]) },
      },
      publishProgress: () => {},
      publishHealth: () => {},
    });

    // Before: every clinic is one migration behind.
    expect((await upgraded.checkClinic(ids[0] as string)).dbStatus).toBe('DEGRADED');

    const broken = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[19] as string } });
    await withClient(other.url, (c) =>
      c.query(`DROP DATABASE ${quoteIdent(broken.databaseName)} WITH (FORCE)`),
    );

    // Each clinic upgraded by an UPGRADE run (the plan a rollout runs, modules/rollouts).
    const upgrade = async (clinicIds: string[]) => {
      const plan = upgradePlan({
        prisma: db.prisma,
        migrations,
        lockTimeoutMs: 5000,
        checkClinic: (id) => upgraded.checkClinic(id),
      });
      const failed: string[] = [];
      const applied: string[] = [];
      await mapLimit(clinicIds, 4, async (clinicId) => {
        const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
        const state = upgradeState(clinicId, clinic, server);
        const result = await upgraded.run(plan, clinicSubject(clinicId, clinic.name), state);
        if (!result.ok) failed.push(clinicId);
        else if (state.applied.length > 0) applied.push(clinicId);
      });
      return { failed, applied };
    };
    const report = await upgrade(ids);
    expect(report.applied).toHaveLength(19);
    expect(report.failed).toEqual([broken.id]);

    for (const id of ids.slice(0, 19)) {
      const health = await upgraded.checkClinic(id);
      expect(health).toMatchObject({ dbStatus: 'HEALTHY', schemaVersion: template.version });
    }
    // The clinic role can use the new table (default privileges).
    const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[0] as string } });
    const url = clinicRoleUrl(
      other.url,
      clinic.databaseName,
      clinic.databaseRole,
      clinicPassword(clinic, t.config.encryptionKey) as string,
    );
    await withClient(url, (c) => c.query('INSERT INTO invoices (amount_cents) VALUES (100)'));
    expect(clinic.schemaVersion).toBe(template.version);

    const behind = await db.prisma.clinic.findMany({
      where: { id: { in: ids }, OR: [{ schemaVersion: null }, { schemaVersion: { not: template.version } }] },
      select: { id: true },
    });
    expect(behind.map((clinic) => clinic.id)).toEqual([broken.id]); // only the broken one is still behind
    await upgraded.close();
  }, 120_000);
});
