/**
 * Crash safety of the runs that are not registrations (docs/decisions/043): a DELETE or RESTORE
 * run whose process dies mid-way (fault injection of a kill: the run stops renewing its lease and
 * never goes on) is taken over by the reconciler once its lease lapses, so the clinic ends
 * DELETED, resp. READY, never DELETING; every run is recorded, and nothing is dropped.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';

describe('abandoned runs of every kind', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    PROVISIONING_LEASE_SECONDS: '1',
  });
  const { provisioning, reconciler, db } = t.app.deps;
  const { prisma } = db;

  const runsOf = (clinicId: string, kind: 'DELETE' | 'RESTORE') =>
    prisma.provisioningRun.findMany({
      where: { clinicId, kind },
      orderBy: { startedAt: 'asc' },
      select: { status: true, attempt: true, error: true },
    });
  /** Reconciles until no run of the clinic is RUNNING (the crashed one's lease lapses first). */
  const reconcileUntilSettled = (clinicId: string) =>
    expect
      .poll(
        async () => {
          await reconciler.reconcile();
          return prisma.provisioningRun.count({ where: { clinicId, status: 'RUNNING' } });
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe(0);
  /** Waits until the crashed run has reached `step` (its earlier steps are done). */
  const crashedAt = (clinicId: string, kind: 'DELETE' | 'RESTORE', done: number) =>
    expect
      .poll(
        () =>
          prisma.provisioningStep.count({
            where: { run: { clinicId, kind, status: 'RUNNING' }, status: 'SUCCEEDED' },
          }),
        { timeout: 20_000, interval: 50 },
      )
      .toBe(done);

  it('a DELETE killed before its commit ends DELETED, its database kept in quarantine; a RESTORE killed mid-way ends READY with the data', async () => {
    const answer = await registerClinic(t);
    const clinicId = answer.result?.clinic?.id as string;
    expect(answer.result?.__typename).toBe('RegisterClinicSuccess');
    const data = await provisioning.clients.get(clinicId);
    await data.healthcareProvider.create({
      data: { firstName: 'Kept', lastName: 'Record', email: 'kept@example.com' },
    });

    // DELETE: ssl, dns, create_database (quarantine) done; the process "dies" entering commit.
    provisioning.faults.injectCrash('commit');
    const deleting = provisioning.deleteClinic(clinicId);
    deleting.catch(() => {});
    await crashedAt(clinicId, 'DELETE', 3);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETING' });
    await reconcileUntilSettled(clinicId);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
    expect(await runsOf(clinicId, 'DELETE')).toEqual([
      { status: 'FAILED', attempt: 1, error: 'abandoned: its process stopped renewing the lease' },
      { status: 'SUCCEEDED', attempt: 2, error: null },
    ]);
    expect(await prisma.auditLog.findFirst({ where: { clinicId, action: 'clinic.delete' } })).toMatchObject({
      actorId: null,
    });
    // Kept, not dropped: the database waits in quarantine for a restore.
    expect(await provisioning.ledger.quarantinedDatabase(clinicId)).toBeTruthy();

    // RESTORE: the database is back under its name; the process "dies" entering dns.
    provisioning.faults.injectCrash('dns');
    const restoring = provisioning.restoreClinic(clinicId);
    restoring.catch(() => {});
    await crashedAt(clinicId, 'RESTORE', 1);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETING' });
    await reconcileUntilSettled(clinicId);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'READY' });
    expect(await runsOf(clinicId, 'RESTORE')).toEqual([
      { status: 'FAILED', attempt: 1, error: 'abandoned: its process stopped renewing the lease' },
      { status: 'SUCCEEDED', attempt: 2, error: null },
    ]);
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    await provisioning.clients.evict(clinicId);
    const restored = await provisioning.clients.get(clinicId);
    expect(await restored.healthcareProvider.count({ where: { email: 'kept@example.com' } })).toBe(1);
  }, 60_000);
});
