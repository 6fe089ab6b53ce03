import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import type { ClinicHealth } from '../provisioning/integrity.js';
import { ClinicHealthMonitor } from './clinics.js';

const admin = inject('pgAdminUrl');
/** A wait for the next background sweeps (1 s apart) on a loaded machine: states, not a time. */
const SWEEPS = { timeout: 20_000, interval: 100 };

const dropFromOutside = (name: string) =>
  withClient(admin, (c) => c.query(`DROP DATABASE ${quoteIdent(name)} WITH (FORCE)`));

describe('the shallow sweep', async () => {
  // A deep period of an hour: within the test, only the shallow sweep can notice anything.
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '1',
    CLINIC_DEEP_CHECK_PERIOD: '1h',
  });
  const { provisioning, db } = t.app.deps;
  const ids: string[] = [];
  for (let i = 0; i < 3; i++)
    ids.push((await createClinic(t, { clinicName: `Shallow ${i}`, country: 'FR' })).clinicId);
  await provisioning.clinicsHealth(); // every clinic recorded HEALTHY

  it('shows a database dropped from outside as MISSING to a clinicHealthChanged subscriber, and recreates nothing', async () => {
    const victim = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[0] as string } });
    const before = await db.prisma.clinicHealthRecord.findUniqueOrThrow({ where: { clinicId: victim.id } });
    const client = t.ws({ connectionParams: await t.superAdmin() });
    const seen = new Promise<{ clinicId: string; dbStatus: string; errors: string[] }>((resolve, reject) => {
      client.subscribe<{ clinicHealthChanged: { clinicId: string; dbStatus: string; errors: string[] } }>(
        { query: 'subscription { clinicHealthChanged { clinicId dbStatus errors } }' },
        {
          next: ({ data }) => {
            if (data?.clinicHealthChanged.clinicId === victim.id) resolve(data.clinicHealthChanged);
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    // The subscription is live once an operation on the same socket has answered.
    await new Promise<void>((resolve, reject) =>
      client.subscribe(
        { query: '{ __typename }' },
        { next: () => resolve(), error: reject, complete: () => {} },
      ),
    );
    await provisioning.clients.evict(victim.id);
    await dropFromOutside(victim.databaseName);
    expect(await seen).toEqual({
      clinicId: victim.id,
      dbStatus: 'MISSING',
      errors: ['database does not exist'],
    });

    const after = await db.prisma.clinicHealthRecord.findUniqueOrThrow({ where: { clinicId: victim.id } });
    expect(after).toMatchObject({ dbStatus: 'MISSING', shallow: 'MISSING' });
    // Found by the catalog alone: no deep check ran for it.
    expect(after.deepCheckedAt).toEqual(before.deepCheckedAt);
    const exists = await withClient(
      admin,
      async (c) =>
        (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [victim.databaseName])).rowCount,
    );
    expect(exists).toBe(0);
    await expect
      .poll(
        () => db.prisma.auditLog.count({ where: { clinicId: victim.id, action: 'clinic.database_missing' } }),
        SWEEPS,
      )
      .toBe(1);
  });

  it('checks a clinic deeply at once when the catalog shows it changed (a role that may no longer log in)', async () => {
    const target = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[1] as string } });
    await withClient(admin, (c) => c.query(`ALTER ROLE ${quoteIdent(target.databaseRole)} NOLOGIN`));
    await expect
      .poll(
        async () =>
          (await db.prisma.clinicHealthRecord.findUnique({ where: { clinicId: target.id } }))?.shallow,
        SWEEPS,
      )
      .toBe('NO_CONNECT');
    expect(await db.prisma.clinicHealthRecord.findUnique({ where: { clinicId: target.id } })).toMatchObject({
      dbStatus: 'UNHEALTHY',
      errors: [`the clinic role ${target.databaseRole} may not log in`],
    });
    await withClient(admin, (c) => c.query(`ALTER ROLE ${quoteIdent(target.databaseRole)} LOGIN`));
    // Back to PRESENT in the catalog: a deep check at once (not in an hour) finds it HEALTHY.
    await expect
      .poll(
        async () =>
          (await db.prisma.clinicHealthRecord.findUnique({ where: { clinicId: target.id } }))?.dbStatus,
        SWEEPS,
      )
      .toBe('HEALTHY');
  });
});

describe('deep checks and the recorded health', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, db } = t.app.deps;
  const ids: string[] = [];
  for (let i = 0; i < 6; i++)
    ids.push((await createClinic(t, { clinicName: `Deep ${i}`, country: 'FR' })).clinicId);

  /** A monitor of this app's clinics with its own pace (the app's own does no background work). */
  const monitor = (intervalSeconds: number, deepPeriodSeconds: number, published: ClinicHealth[] = []) =>
    new ClinicHealthMonitor({
      prisma: db.prisma,
      pool: db.pool,
      logger: t.app.deps.logger,
      metrics: t.app.deps.metrics,
      integrity: provisioning.integrity,
      concurrency: 2,
      intervalSeconds,
      deepPeriodSeconds,
      refreshServers: async () => {},
      publish: (health) => published.push(health),
      onMissing: async () => {},
    });

  it('deep-checks a few clinics per sweep, oldest-checked first, each within the deep period', async () => {
    await provisioning.clinicsHealth();
    // Deep checks an hour old, in the order of `ids`: ids[0] oldest.
    for (const [index, id] of ids.entries())
      await db.prisma.clinicHealthRecord.update({
        where: { clinicId: id },
        data: { deepCheckedAt: new Date(Date.now() - 3_600_000 + index * 1000) },
      });
    const deepChecked = async () =>
      new Map(
        (await db.prisma.clinicHealthRecord.findMany({ where: { clinicId: { in: ids } } })).map((row) => [
          row.clinicId,
          row.deepCheckedAt?.getTime() ?? 0,
        ]),
      );
    const start = Date.now() - 60_000;
    // 6 clinics, a sweep each second, every one within 3 s: 2 per sweep.
    const health = monitor(1, 3);
    await health.tick();
    let checked = await deepChecked();
    expect(ids.filter((id) => (checked.get(id) ?? 0) > start)).toEqual(ids.slice(0, 2));
    await health.tick();
    await health.tick();
    checked = await deepChecked();
    expect(ids.filter((id) => (checked.get(id) ?? 0) > start)).toEqual(ids);
    // Nothing due any more: a further sweep checks none again.
    await health.tick();
    expect(await deepChecked()).toEqual(checked);
    await health.close();
  });

  it('finds what only a deep check can see, and publishes the change once', async () => {
    const target = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[2] as string } });
    await withClient(databaseUrl(admin, target.databaseName), (c) => c.query('DROP TABLE settings'));
    const published: ClinicHealth[] = [];
    const health = monitor(1, 3, published);
    await db.prisma.clinicHealthRecord.update({
      where: { clinicId: target.id },
      data: { deepCheckedAt: null },
    });
    await health.tick();
    expect(published.map((p) => [p.clinicId, p.dbStatus, p.missingTables])).toEqual([
      [target.id, 'DEGRADED', ['settings']],
    ]);
    await health.tick();
    expect(published).toHaveLength(1);
    await health.close();
    await provisioning.repairClinic(target.id);
  });

  it('answers clinicsHealth from the record: counts by status and a page filtered by status, server and name', async () => {
    const victim = await db.prisma.clinic.findUniqueOrThrow({ where: { id: ids[5] as string } });
    await provisioning.clients.evict(victim.id);
    await dropFromOutside(victim.databaseName);
    await provisioning.clinicsHealth();
    const headers = await t.superAdmin();
    const summary = await t.gql<{
      clinicsHealth: {
        total: number;
        healthy: number;
        unhealthy: number;
        byStatus: { status: string; count: number }[];
      };
    }>('{ clinicsHealth { total healthy unhealthy byStatus { status count } } }', {}, headers);
    expect(summary.body.data?.clinicsHealth).toEqual({
      total: 6,
      healthy: 5,
      unhealthy: 1,
      byStatus: [
        { status: 'HEALTHY', count: 5 },
        { status: 'DEGRADED', count: 0 },
        { status: 'UNHEALTHY', count: 0 },
        { status: 'MISSING', count: 1 },
        { status: 'PROVISIONING', count: 0 },
      ],
    });

    type Page = {
      clinicsHealth: {
        page: {
          edges: { cursor: string; node: { clinicId: string; dbStatus: string } }[];
          pageInfo: { hasNextPage: boolean; endCursor: string | null };
        };
      };
    };
    const PAGE = `query ($first: Int, $after: String, $status: DbStatus, $server: String, $search: String) {
      clinicsHealth { page(first: $first, after: $after, status: $status, server: $server, search: $search) {
        edges { cursor node { clinicId dbStatus } } pageInfo { hasNextPage endCursor } } } }`;
    const pageOf = async (variables: Record<string, unknown>) =>
      (await t.gql<Page>(PAGE, variables, headers)).body.data?.clinicsHealth.page;

    const first = await pageOf({ first: 4 });
    expect(first?.edges.map((edge) => edge.node.clinicId)).toEqual(ids.slice(0, 4));
    expect(first?.pageInfo.hasNextPage).toBe(true);
    const second = await pageOf({ first: 4, after: first?.pageInfo.endCursor });
    expect(second?.edges.map((edge) => edge.node.clinicId)).toEqual(ids.slice(4));
    expect(second?.pageInfo.hasNextPage).toBe(false);

    expect((await pageOf({ status: 'MISSING' }))?.edges.map((edge) => edge.node)).toEqual([
      { clinicId: victim.id, dbStatus: 'MISSING' },
    ]);
    expect((await pageOf({ search: 'deep 3' }))?.edges.map((edge) => edge.node.clinicId)).toEqual([ids[3]]);
    const server = provisioning.serverName(victim.databaseServerId);
    expect((await pageOf({ server }))?.edges).toHaveLength(6);
    expect((await pageOf({ server: 'nowhere:1' }))?.edges).toEqual([]);
    // A search is text, not a pattern: % matches only a literal %.
    expect((await pageOf({ search: '%' }))?.edges).toEqual([]);

    const bad = await t.gql<Page>(PAGE, { after: 'not-a-cursor' }, headers);
    expect(bad.body.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED' });
    const tooMany = await t.gql<Page>(PAGE, { first: 1000 }, headers);
    expect(tooMany.body.errors?.[0]?.extensions).toMatchObject({ code: 'VALIDATION_FAILED' });
    await provisioning.repairClinic(victim.id);
  });

  it('checks a clinic never recorded before answering for it', async () => {
    const { clinicId } = await createClinic(t, {
      clinicName: 'Late',
      country: 'FR',
    });
    expect(await db.prisma.clinicHealthRecord.findUnique({ where: { clinicId } })).toBeNull();
    const { body } = await t.gql<{ clinicsHealth: { page: { edges: { node: { dbStatus: string } }[] } } }>(
      '{ clinicsHealth { page(search: "Late") { edges { node { dbStatus } } } } }',
      {},
      await t.superAdmin(),
    );
    expect(body.data?.clinicsHealth.page.edges).toEqual([{ node: { dbStatus: 'HEALTHY' } }]);
  });
});
