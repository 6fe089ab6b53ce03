/**
 * Crash safety of the runs that are not registrations (docs/decisions/043): a DELETE or RESTORE
 * run whose process dies mid-way (fault injection of a kill: the run stops renewing its lease and
 * never goes on) is taken over by the reconciler once its lease lapses, so the clinic ends
 * DELETED, resp. READY, never DELETING; every run is recorded, and nothing is dropped. A
 * reconciler killed in the middle of a takeover (docs/decisions/058) leaves the run RUNNING, and
 * the next sweep finishes it: no clinic stays PROVISIONING or DELETING without a live run.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import type { TakeoverCrashPoint } from './faults.js';

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

  /**
   * The next takeover "dies" at `point` (the app's own sweep, every lease, or one here): until
   * then the run stays RUNNING.
   */
  const takeoverKilledAt = async (point: TakeoverCrashPoint) => {
    provisioning.faults.injectTakeoverCrash(point);
    await expect
      .poll(
        async () => {
          await reconciler.reconcile().catch(() => {});
          return provisioning.faults.takeoverCrashPending(point);
        },
        { timeout: 20_000, interval: 200 },
      )
      .toBe(false);
  };

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
    // The first reconciler to take it over dies on claiming it: the run is still the next one's.
    await takeoverKilledAt('claimed');
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

describe('a reconciler killed while it takes over an abandoned registration', async () => {
  // A lease longer than the test: the app's own sweeps (one a lease) stay out of it; each sweep
  // here comes after the lease is made to lapse.
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    PROVISIONING_LEASE_SECONDS: '120',
  });
  const { provisioning, reconciler, db } = t.app.deps;
  const { prisma } = db;
  provisioning.faults.injectTakeoverCrash('claimed');
  provisioning.faults.injectTakeoverCrash('undone');

  it('a registration killed mid-way, whose reconcilers die after the claim and after the undo outside, is rolled back by the next sweep: the run stays RUNNING until the clinic is gone', async () => {
    provisioning.faults.injectCrash('dns');
    // The request never returns (its process "died"); the server drops it when it stops.
    const registering = registerClinic(t);
    registering.catch(() => {});
    await expect.poll(() => provisioning.faults.crashPending('dns'), { timeout: 20_000 }).toBe(false);
    const run = await prisma.provisioningRun.findFirstOrThrow({
      where: { kind: 'REGISTER', status: 'RUNNING' },
      select: { id: true, clinicId: true },
    });
    const clinicId = run.clinicId as string;
    /** A sweep once the run's lease (its process's, or a killed reconciler's) has lapsed. */
    const sweepAfterLapse = async () => {
      await prisma.provisioningRun.update({ where: { id: run.id }, data: { leaseUntil: new Date(0) } });
      return reconciler.reconcile();
    };
    const runOf = () =>
      prisma.provisioningRun.findUniqueOrThrow({
        where: { id: run.id },
        select: { status: true, error: true },
      });

    await expect(sweepAfterLapse()).rejects.toThrow('injected reconciler crash: claimed');
    expect(await runOf()).toMatchObject({ status: 'RUNNING' });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({
      status: 'PROVISIONING',
    });
    // Killed after releasing the subdomain, before the central rollback: still RUNNING, the clinic
    // still there, never a finished run beside a clinic being undone.
    await expect(sweepAfterLapse()).rejects.toThrow('injected reconciler crash: undone');
    expect(await runOf()).toMatchObject({
      status: 'RUNNING',
      error: 'abandoned: its process stopped renewing the lease',
    });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({
      status: 'PROVISIONING',
    });

    await sweepAfterLapse();
    expect(await runOf()).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toBeNull();
    expect(await prisma.auditLog.count({ where: { clinicId, action: 'registration.reconciled' } })).toBe(1);
    const report = await reconciler.zombieReport();
    expect(report.accounts.filter((account) => account.status === 'PROVISIONING')).toEqual([]);
    // Its database is kept, quarantined, not dropped.
    expect((await provisioning.ledger.quarantined()).some((entry) => entry.clinicId === clinicId)).toBe(true);
  }, 60_000);
});

describe('a registration killed right after a step that records itself in its own transaction', async () => {
  // docs/decisions/063: central_records, subdomain and commit write their record in the same
  // transaction as their work, so a kill right after one leaves both or neither. A lease longer
  // than the test keeps the app's own sweeps out; each sweep here comes after a forced lapse.
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    PROVISIONING_LEASE_SECONDS: '120',
  });
  const { provisioning, reconciler, db } = t.app.deps;
  const { prisma } = db;

  /** Registers with a kill right after `step`; the run, once its process has "died". */
  async function killedAfter(step: 'central_records' | 'subdomain' | 'commit') {
    provisioning.faults.injectCrash(step, 'after');
    const registering = registerClinic(t);
    registering.catch(() => {});
    await expect.poll(() => provisioning.faults.crashPending(step), { timeout: 20_000 }).toBe(false);
    const run = await prisma.provisioningRun.findFirstOrThrow({
      where: { kind: 'REGISTER', status: 'RUNNING', error: null },
      orderBy: { startedAt: 'desc' }, // this one, should an earlier test have left its own
      select: { id: true, clinicId: true },
    });
    const steps = await prisma.provisioningStep.findMany({
      where: { runId: run.id },
      orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }],
      select: { name: true, status: true },
    });
    return { runId: run.id, clinicId: run.clinicId as string, steps };
  }
  const sweepAfterLapse = async (runId: string) => {
    await prisma.provisioningRun.update({ where: { id: runId }, data: { leaseUntil: new Date(0) } });
    await reconciler.reconcile();
    return prisma.provisioningRun.findUniqueOrThrow({ where: { id: runId }, select: { status: true } });
  };

  it('after central_records: its rows and its record are there together, and the takeover rolls both the clinic and its company back', async () => {
    const { runId, clinicId, steps } = await killedAfter('central_records');
    expect(steps).toEqual([{ name: 'central_records', status: 'SUCCEEDED' }]);
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    expect(clinic.status).toBe('PROVISIONING');
    expect(await prisma.user.count({ where: { clinicId } })).toBe(1);

    expect(await sweepAfterLapse(runId)).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toBeNull();
    expect(await prisma.company.findUnique({ where: { id: clinic.companyId } })).toBeNull();
    const report = await reconciler.zombieReport();
    expect(report.accounts.filter((account) => account.status === 'PROVISIONING')).toEqual([]);
  }, 60_000);

  it('after subdomain: the reservation and its record are there together, and the takeover frees the name with the clinic', async () => {
    const { runId, clinicId, steps } = await killedAfter('subdomain');
    expect(steps).toEqual([
      { name: 'central_records', status: 'SUCCEEDED' },
      { name: 'subdomain', status: 'SUCCEEDED' },
    ]);
    const { subdomain } = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    expect(await prisma.subdomainReservation.count({ where: { subdomain, clinicId } })).toBe(1);

    expect(await sweepAfterLapse(runId)).toMatchObject({ status: 'ROLLED_BACK' });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toBeNull();
    expect(await prisma.subdomainReservation.count({ where: { subdomain } })).toBe(0);
  }, 60_000);

  it('after commit: the clinic is READY exactly when commit is recorded, and the takeover keeps it READY and closes the run', async () => {
    const { runId, clinicId, steps } = await killedAfter('commit');
    expect(steps.at(-1)).toEqual({ name: 'commit', status: 'SUCCEEDED' });
    expect(steps.map((step) => step.name)).not.toContain('verification_email');
    expect(await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).toMatchObject({
      status: 'READY',
    });

    expect(await sweepAfterLapse(runId)).toMatchObject({ status: 'FAILED' });
    expect(await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).toMatchObject({
      status: 'READY',
    });
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
  }, 60_000);
});
