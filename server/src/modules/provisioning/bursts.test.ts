/**
 * Repairs and restores of one clinic at once (two instances, an operator clicking twice): one
 * does the work, the others find it done or are refused, and the clinic's rows are all there.
 * Nothing is ever recreated empty over a database that is only quarantined.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';

describe('bursts of repairs and restores of one clinic', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, db } = t.app.deps;
  const prisma = db.prisma;

  const withPatient = async (name: string) => {
    const { clinicId } = await createClinic(t, { clinicName: name, country: 'FR' });
    await (await provisioning.clients.get(clinicId)).patient.create({
      data: { firstName: 'Ada', lastName: name },
    });
    await provisioning.clients.evict(clinicId);
    return clinicId;
  };
  const patients = async (clinicId: string) =>
    (await (await provisioning.clients.get(clinicId)).patient.findMany()).map((row) => row.lastName);

  it('five repairs at once of a clinic whose database sits in quarantine restore it once, rows intact', async () => {
    const clinicId = await withPatient('Quarantined by mistake');
    await provisioning.ledger.quarantineClinic(clinicId, 'a test quarantines it', 3600);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => provisioning.repairClinic(clinicId)),
    );
    const done = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    expect(done.length).toBeGreaterThan(0);
    expect(done.some((result) => result.dataLost)).toBe(false);
    expect(done.flatMap((result) => result.actions).join('\n')).not.toMatch(/EMPTY|recreated database/);
    expect(await patients(clinicId)).toEqual(['Quarantined by mistake']);
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    expect(await prisma.auditLog.count({ where: { clinicId, action: 'clinic.data_lost' } })).toBe(0);
  });

  it('five restores at once of a deleted clinic: one restores, the others are refused, rows intact', async () => {
    const clinicId = await withPatient('Deleted then restored');
    await provisioning.deleteClinic(clinicId);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => provisioning.restoreClinic(clinicId)),
    );
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1);
    for (const result of results)
      if (result.status === 'rejected') expect(String(result.reason)).toMatch(/restoring|DELETING|READY/);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'READY' });
    expect(await patients(clinicId)).toEqual(['Deleted then restored']);
    // Restored, the purge has nothing of it left to drop, however late it runs.
    await provisioning.purgeDue(new Date(Date.now() + 365 * 86_400_000));
    expect(await patients(clinicId)).toEqual(['Deleted then restored']);
  });

  it('a repair at once with a deletion: the clinic ends deleted and restorable or repaired, never emptied', async () => {
    const clinicId = await withPatient('Raced');
    await provisioning.ledger.quarantineClinic(clinicId, 'a test quarantines it', 3600);
    await Promise.allSettled([provisioning.repairClinic(clinicId), provisioning.deleteClinic(clinicId)]);
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    if (clinic.status === 'DELETED') await provisioning.restoreClinic(clinicId);
    else if (clinic.status !== 'READY') throw new Error(`clinic left ${clinic.status}`);
    expect(await patients(clinicId)).toEqual(['Raced']);
    expect(await prisma.auditLog.count({ where: { clinicId, action: 'clinic.data_lost' } })).toBe(0);
  });

  it('a clinic deleted while its database sits in quarantine keeps the deletion’s whole retention', async () => {
    const clinicId = await withPatient('Quarantined then deleted');
    await provisioning.ledger.quarantineClinic(clinicId, 'a test quarantines it', 3600);
    await provisioning.deleteClinic(clinicId);
    const retention = t.app.deps.config.clinicDeleteRetentionSeconds * 1000;
    for (const entry of await prisma.clinicObject.findMany({ where: { clinicId } })) {
      expect(entry.state).toBe('QUARANTINED');
      expect((entry.purgeAfter as Date).getTime()).toBeGreaterThan(Date.now() + retention - 86_400_000);
    }
    await provisioning.purgeDue(new Date(Date.now() + 2 * 3600_000));
    await provisioning.restoreClinic(clinicId);
    expect(await patients(clinicId)).toEqual(['Quarantined then deleted']);
  });
});
