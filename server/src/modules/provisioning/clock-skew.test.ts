/**
 * Retention under clock skew: two instances whose clocks disagree. The retention of a quarantined
 * or deleted clinic is counted on one clock, the central database's; an instance whose own clock
 * runs ahead (or that deleted the clinic while its clock ran behind) never purges early.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';

const DAY = 86_400_000;

describe('retention under clock skew', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, db, reconciler } = t.app.deps;
  const prisma = db.prisma;
  const retentionDays = t.app.deps.config.clinicDeleteRetentionSeconds / 86_400;

  afterEach(() => {
    vi.useRealTimers();
  });

  const databaseExists = async (name: string) =>
    (await prisma.$queryRaw<unknown[]>`SELECT 1 FROM pg_database WHERE datname = ${name}`).length > 0;
  /** Runs `work` on an instance whose clock is `days` off the database's. */
  const skewed = async <T>(days: number, work: () => Promise<T>): Promise<T> => {
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + days * DAY });
    try {
      return await work();
    } finally {
      vi.useRealTimers();
    }
  };

  it('an instance whose clock runs past the retention purges nothing deleted a moment ago', async () => {
    const { clinicId } = await createClinic(t, { clinicName: 'Fast clock', country: 'FR' });
    await provisioning.deleteClinic(clinicId);
    const kept = await prisma.clinicObject.findFirstOrThrow({ where: { clinicId, kind: 'DATABASE' } });

    const result = await skewed(retentionDays + 10, () => reconciler.purge());
    expect(result.purged).toBe(0);
    expect(result.clinics).not.toContain(clinicId);
    expect(await databaseExists(kept.trashName as string)).toBe(true);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
    // Nor does it refuse a restore the retention still allows.
    const health = await skewed(retentionDays + 10, () => provisioning.restoreClinic(clinicId));
    expect(health.dbStatus).toBe('HEALTHY');
  });

  it('a clinic deleted by an instance whose clock runs behind keeps its whole retention', async () => {
    const { clinicId } = await createClinic(t, { clinicName: 'Slow clock', country: 'FR' });
    await skewed(-(retentionDays + 10), () => provisioning.deleteClinic(clinicId));
    const kept = await prisma.clinicObject.findFirstOrThrow({ where: { clinicId, kind: 'DATABASE' } });
    // Counted from the database's clock: the retention ends about `retentionDays` from now.
    expect((kept.purgeAfter as Date).getTime()).toBeGreaterThan(Date.now() + (retentionDays - 1) * DAY);

    const result = await reconciler.purge();
    expect(result.purged).toBe(0);
    expect(await databaseExists(kept.trashName as string)).toBe(true);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
  });
});
