/**
 * Clinics whose database and role predate the ledger (docs/decisions/040): deleting one keeps
 * its data in quarantine for CLINIC_DELETE_RETENTION like any other, a DELETED one left without
 * entries is taken into quarantine by the purge job, and after the retention it is purged. The
 * clinic's own row is the record that the database is its own; nothing else is ever dropped.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { quoteIdent, withClient } from '../../db/sql.js';

const admin = inject('pgAdminUrl');

async function databaseExists(name: string): Promise<boolean> {
  return withClient(admin, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return (rowCount ?? 0) > 0;
  });
}

describe('a clinic without ledger entries (made before the ledger existed)', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, reconciler, db } = t.app.deps;
  const { prisma } = db;
  const later = () => new Date(Date.now() + t.config.clinicDeleteRetentionSeconds * 1000 + 60_000);
  // Named like a clinic database, made by hand: no clinic records it, nothing may drop it.
  const handMade = `clinic_unrecorded_${randomBytes(8).toString('hex')}`;
  await withClient(admin, (client) => client.query(`CREATE DATABASE ${quoteIdent(handMade)}`));
  afterAll(() =>
    withClient(admin, (client) =>
      client.query(`DROP DATABASE IF EXISTS ${quoteIdent(handMade)} WITH (FORCE)`),
    ),
  );

  /** A READY clinic with a row of data, its ledger entries removed as if it predated the ledger. */
  const legacyClinic = async (name: string) => {
    const { clinicId } = await createClinic(t, { clinicName: name, country: 'FR' });
    const data = await provisioning.clients.get(clinicId);
    await data.healthcareProvider.create({
      data: { firstName: 'Kept', lastName: name, email: 'kept@example.com' },
    });
    await prisma.clinicObject.deleteMany({ where: { clinicId } });
    return prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
  };
  const deleteClinic = async (clinicId: string) =>
    (
      await t.gql(
        `mutation { deleteClinic(clinicId: "${clinicId}") { __typename } }`,
        undefined,
        await t.superAdmin(),
      )
    ).body.data;

  it('deleteClinic quarantines its database, restoreClinic brings it back with its rows, the purge drops it after the retention', async () => {
    const clinic = await legacyClinic('Unrecorded deleted');
    expect(await deleteClinic(clinic.id)).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    const [kept] = (await provisioning.ledger.quarantined()).filter((entry) => entry.clinicId === clinic.id);
    expect(kept).toMatchObject({ kind: 'DATABASE', name: clinic.databaseName });
    expect(await databaseExists(kept?.trashName ?? '')).toBe(true);
    expect(await databaseExists(clinic.databaseName)).toBe(false);

    const restored = await t.gql<{ restoreClinic: { __typename: string } }>(
      `mutation { restoreClinic(clinicId: "${clinic.id}") { __typename } }`,
      undefined,
      await t.superAdmin(),
    );
    expect(restored.body.data?.restoreClinic.__typename).toBe('RestoreClinicSuccess');
    const data = await provisioning.clients.get(clinic.id);
    expect(await data.healthcareProvider.count({ where: { lastName: 'Unrecorded deleted' } })).toBe(1);

    await deleteClinic(clinic.id);
    await reconciler.purge(later());
    expect(await prisma.clinic.findUnique({ where: { id: clinic.id } })).toBeNull();
    expect(await databaseExists(clinic.databaseName)).toBe(false);
    expect((await provisioning.ledger.quarantined()).filter((entry) => entry.clinicId === clinic.id)).toEqual(
      [],
    );
    expect(await databaseExists(handMade)).toBe(true);
  });

  it('a DELETED clinic left without entries is quarantined by the purge job, and purged after the retention', async () => {
    const clinic = await legacyClinic('Deleted without entries');
    // What a deletion that found no entry left: DELETED, its database still open.
    await prisma.clinic.update({ where: { id: clinic.id }, data: { status: 'DELETED' } });
    await reconciler.purge();
    const [kept] = (await provisioning.ledger.quarantined()).filter((entry) => entry.clinicId === clinic.id);
    expect(kept).toMatchObject({ kind: 'DATABASE', name: clinic.databaseName });
    expect(await databaseExists(kept?.trashName ?? '')).toBe(true);
    expect(await prisma.clinic.findUnique({ where: { id: clinic.id } })).toMatchObject({ status: 'DELETED' });

    await reconciler.purge(later());
    expect(await databaseExists(kept?.trashName ?? '')).toBe(false);
    expect(await prisma.clinic.findUnique({ where: { id: clinic.id } })).toBeNull();
    expect(await databaseExists(handMade)).toBe(true);
  });

  it('a DELETED clinic whose database is already gone keeps its rows for the retention, then is purged', async () => {
    const clinic = await legacyClinic('Deleted and dropped');
    await provisioning.clients.evict(clinic.id);
    await withClient(admin, (client) =>
      client.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`),
    );
    await prisma.clinic.update({ where: { id: clinic.id }, data: { status: 'DELETED' } });
    await reconciler.purge();
    expect(await prisma.clinic.findUnique({ where: { id: clinic.id } })).toMatchObject({ status: 'DELETED' });
    await reconciler.purge(later());
    expect(await prisma.clinic.findUnique({ where: { id: clinic.id } })).toBeNull();
    expect(await databaseExists(handMade)).toBe(true);
  });
});
