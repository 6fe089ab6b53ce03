/**
 * The purge is a job of its own (docs/decisions/040): graphile-worker runs it when the first
 * quarantined object's retention ends, and hourly from its crontab, once per cluster however many
 * instances run; nothing else drops what sits in quarantine.
 */
import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';

const admin = inject('pgAdminUrl');

const env = {
  CLINIC_POOL_SIZE: '0',
  CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  CLINIC_DELETE_RETENTION: '2s',
  // The periodic reconcile pass far away: whatever purges within the test is the job.
  PROVISIONING_LEASE_SECONDS: '600',
};

async function databaseExists(name: string): Promise<boolean> {
  return withClient(admin, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return (rowCount ?? 0) > 0;
  });
}

describe('the purge job', async () => {
  // Two instances on one central database: the cluster the job must run once in.
  const first = await startTestApp(env);
  const second = await startTestApp({ ...env, DATABASE_URL: first.config.databaseUrl });
  const { prisma } = first.app.deps.db;

  it('is scheduled in the crontab of the job worker', async () => {
    const known = await prisma.$queryRaw<{ identifier: string }[]>`
      SELECT identifier FROM graphile_worker._private_known_crontabs`;
    expect(known.map((row) => row.identifier)).toContain('purge_quarantine');
  });

  it('drops a deleted clinic once its retention ends, once for the whole cluster, and removes its rows', async () => {
    const { clinicId } = await createClinic(first, {
      clinicName: 'Purged by the job',
      country: 'FR',
    });
    const deleted = await first.gql(
      `mutation { deleteClinic(clinicId: "${clinicId}") { __typename } }`,
      undefined,
      await first.superAdmin(),
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    const [kept] = await first.app.deps.provisioning.ledger.quarantined();
    expect(kept).toMatchObject({ clinicId, kind: 'DATABASE' });
    const trashName = kept?.trashName ?? '';
    expect(await databaseExists(trashName)).toBe(true);
    // A purge job waits for the retention's end.
    const jobs = () =>
      prisma.$queryRaw<{ run_at: Date }[]>`
        SELECT run_at FROM graphile_worker.jobs WHERE task_identifier = 'purge_quarantine'`;
    expect((await jobs()).length).toBe(1);

    await expect
      .poll(() => prisma.clinic.findUnique({ where: { id: clinicId } }), { timeout: 20_000, interval: 100 })
      .toBeNull();
    expect(await databaseExists(trashName)).toBe(false);
    expect(await prisma.auditLog.count({ where: { action: 'clinic.purge', clinicId } })).toBe(1);
    expect(await prisma.clinicObject.findMany({ where: { clinicId }, select: { state: true } })).toEqual([
      { state: 'DROPPED' },
      { state: 'DROPPED' },
    ]);
    // Nothing left in quarantine: no purge waits.
    await expect.poll(async () => (await jobs()).length, { timeout: 10_000, interval: 100 }).toBe(0);
    void second;
  });
});
