import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic, verifyEmail } from '../../../test/registration-flow.js';
import { databaseUrl, withClient } from '../../db/sql.js';
import { NotFoundError } from '../../errors.js';

const admin = inject('pgAdminUrl');
const PASSWORD = 'correct horse battery staple';
const SIGN_IN =
  'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { __typename ... on Error { code } } }';
const RESTORE = `mutation ($id: ID!) { restoreClinic(clinicId: $id) {
  __typename
  ... on RestoreClinicSuccess { clinicId health { dbStatus } }
  ... on Error { code message }
} }`;

interface Restored {
  __typename: string;
  clinicId?: string;
  health?: { dbStatus: string };
  code?: string;
  message?: string;
}

describe('restoreClinic', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, db } = t.app.deps;
  const prisma = db.prisma;

  const provision = async (name: string) => {
    const { clinicId, admin } = await createClinic(t, {
      clinicName: name,
      country: 'FR',
      adminPassword: PASSWORD,
    });
    await verifyEmail(t, admin.email);
    return { clinicId, email: admin.email };
  };
  const signIn = async (email: string) =>
    (
      await t.gql<{ signInWithPassword: { __typename: string; code?: string } }>(SIGN_IN, {
        e: email,
        p: PASSWORD,
      })
    ).body.data?.signInWithPassword;
  const restore = async (clinicId: string, headers?: Record<string, string>) =>
    (await t.gql<{ restoreClinic: Restored }>(RESTORE, { id: clinicId }, headers ?? (await t.superAdmin())))
      .body.data?.restoreClinic;
  const remove = async (clinicId: string) =>
    t.gql(
      `mutation { deleteClinic(clinicId: "${clinicId}") { __typename } }`,
      undefined,
      await t.superAdmin(),
    );

  it('brings a deleted clinic back with its data: READY, HEALTHY, users signing in, a RESTORE run, audited', async () => {
    const { clinicId, email } = await provision('Restorable');
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const data = await provisioning.clients.get(clinicId);
    await data.healthcareProvider.create({
      data: { firstName: 'Kept', lastName: 'Record', email: 'kept@example.com' },
    });
    expect((await signIn(email))?.__typename).toBe('AuthSession');

    await remove(clinicId);
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
    // The deletion is a recorded DELETE run: the registration's steps undone in reverse.
    const deletion = await prisma.provisioningRun.findMany({
      where: { clinicId, kind: 'DELETE' },
      include: { steps: { orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }] } },
    });
    expect(deletion.map((run) => run.status)).toEqual(['SUCCEEDED']);
    expect(deletion[0]?.steps.map((step) => [step.name, step.status])).toEqual([
      ['ssl', 'SUCCEEDED'],
      ['dns', 'SUCCEEDED'],
      ['create_database', 'SUCCEEDED'],
      ['commit', 'SUCCEEDED'],
    ]);
    const deleted = await prisma.auditLog.findFirst({ where: { clinicId, action: 'clinic.delete' } });
    expect(deleted).toMatchObject({ data: { runId: deletion[0]?.id } });
    expect(deleted?.actorId).toBeTruthy();
    // A second delete changes nothing (no new retention, no new audit entry): a typed refusal.
    expect((await remove(clinicId)).body.data).toEqual({ deleteClinic: { __typename: 'ConflictError' } });
    expect((await signIn(email))?.code).toBe('CLINIC_UNAVAILABLE');
    // Repair is not the way back: it would revive the database under a clinic that stays DELETED.
    const repaired = await t.gql<{ repairClinic: { __typename: string; message?: string } }>(
      `mutation { repairClinic(clinicId: "${clinicId}") { __typename ... on Error { message } } }`,
      undefined,
      await t.superAdmin(),
    );
    expect(repaired.body.data?.repairClinic).toEqual({
      __typename: 'ConflictError',
      message: 'The clinic is DELETED: restoreClinic brings it back.',
    });

    // Two restores at once: one succeeds, the other is refused with a typed error.
    const headers = await t.superAdmin();
    const answers = await Promise.all([restore(clinicId, headers), restore(clinicId, headers)]);
    expect(answers.map((answer) => answer?.__typename).sort()).toEqual([
      'ConflictError',
      'RestoreClinicSuccess',
    ]);
    expect(answers).toContainEqual({
      __typename: 'RestoreClinicSuccess',
      clinicId,
      health: { dbStatus: 'HEALTHY' },
    });

    const after = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    expect(after).toMatchObject({ status: 'READY', databaseName: clinic.databaseName });
    expect(
      await prisma.clinicObject.findMany({ where: { clinicId }, select: { state: true, trashName: true } }),
    ).toEqual([
      { state: 'COMMITTED', trashName: null },
      { state: 'COMMITTED', trashName: null },
    ]);
    const providers = await (await provisioning.clients.get(clinicId)).healthcareProvider.findMany();
    expect(providers.map((provider) => provider.lastName)).toContain('Record');
    expect((await signIn(email))?.__typename).toBe('AuthSession');

    const runs = await prisma.provisioningRun.findMany({
      where: { clinicId, kind: 'RESTORE' },
      include: { steps: { orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }] } },
    });
    expect(runs.map((run) => run.status)).toEqual(['SUCCEEDED']);
    // Its steps, recorded and streamed like a registration's.
    expect(runs[0]?.steps.map((step) => [step.name, step.status])).toEqual([
      ['create_database', 'SUCCEEDED'],
      ['dns', 'SUCCEEDED'],
      ['ssl', 'SUCCEEDED'],
      ['commit', 'SUCCEEDED'],
    ]);
    const audit = await prisma.auditLog.findMany({ where: { clinicId, action: 'clinic.restore' } });
    expect(audit).toHaveLength(1);
    expect(audit[0]?.actorId).toBeTruthy();

    // Restored already: nothing to restore.
    expect(await restore(clinicId)).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
  });

  it('refuses an unknown clinic, and a deleted one whose retention is over', async () => {
    expect(await restore('00000000-0000-4000-8000-000000000000')).toMatchObject({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
    });
    const { clinicId } = await provision('Expired');
    await remove(clinicId);
    await prisma.clinicObject.updateMany({
      where: { clinicId },
      data: { purgeAfter: new Date(Date.now() - 1000) },
    });
    expect(await restore(clinicId)).toMatchObject({
      __typename: 'ConflictError',
      message: expect.stringMatching(/retention/),
    });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
    expect(await prisma.provisioningRun.count({ where: { clinicId, kind: 'RESTORE' } })).toBe(0);
  });

  it('purges a deleted clinic after its retention: database, role and central rows; the audit log stays', async () => {
    const { clinicId, email } = await provision('Purged');
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    expect((await signIn(email))?.__typename).toBe('AuthSession');
    await remove(clinicId);
    const kept = await prisma.clinicObject.findFirstOrThrow({ where: { clinicId, kind: 'DATABASE' } });
    const databaseExists = async (name: string) =>
      (await prisma.$queryRaw<unknown[]>`SELECT 1 FROM pg_database WHERE datname = ${name}`).length > 0;

    // Within the retention nothing goes.
    expect((await provisioning.purgeDue()).clinics).not.toContain(clinicId); // (another test's may go)
    expect(await prisma.clinic.count({ where: { id: clinicId } })).toBe(1);

    const later = new Date(Date.now() + 31 * 86_400_000);
    expect(await provisioning.purgeDue(later)).toMatchObject({ purged: 2, clinics: [clinicId] });
    expect(await databaseExists(kept.trashName as string)).toBe(false);
    expect(await databaseExists(clinic.databaseName)).toBe(false);
    expect(await prisma.clinic.count({ where: { id: clinicId } })).toBe(0);
    expect(await prisma.company.count({ where: { id: clinic.companyId } })).toBe(0);
    expect(await prisma.user.count({ where: { clinicId } })).toBe(0);
    expect(await prisma.user.count({ where: { email } })).toBe(0);
    expect(await prisma.session.count({ where: { user: { email } } })).toBe(0);
    expect(await prisma.subdomainReservation.count({ where: { clinicId } })).toBe(0);
    expect(await prisma.subdomainReservation.count({ where: { subdomain: clinic.subdomain } })).toBe(0);
    const actions = (await prisma.auditLog.findMany({ where: { clinicId }, select: { action: true } })).map(
      (entry) => entry.action,
    );
    expect(actions).toEqual(expect.arrayContaining(['clinic.delete', 'clinic.purge']));
    expect(await restore(clinicId)).toMatchObject({ __typename: 'NotFoundError' });
  });

  it('restores, for the operator, a quarantined database no clinic owns, by its trash name', async () => {
    const { clinicId } = await provision('Never committed');
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    await (await provisioning.clients.get(clinicId)).healthcareProvider.create({
      data: { firstName: 'Left', lastName: 'Behind', email: 'left@example.com' },
    });
    await provisioning.clients.evict(clinicId);
    await provisioning.ledger.quarantineClinic(clinicId, 'left by a run that did not commit', 3600);
    await prisma.company.delete({ where: { id: clinic.companyId } }); // no clinic owns it now
    const kept = await prisma.clinicObject.findFirstOrThrow({ where: { clinicId, kind: 'DATABASE' } });

    await expect(provisioning.restoreQuarantined('onramp_trash_nothing_here')).rejects.toThrow(NotFoundError);
    expect(await provisioning.restoreQuarantined(kept.trashName as string)).toMatch(/restored/);
    expect(await prisma.clinicObject.findMany({ where: { clinicId }, select: { state: true } })).toEqual([
      { state: 'COMMITTED' },
      { state: 'COMMITTED' },
    ]);
    const rows = await withClient(databaseUrl(admin, clinic.databaseName), (client) =>
      client.query<{ last_name: string }>('SELECT last_name FROM healthcare_providers'),
    );
    expect(rows.rows.map((row) => row.last_name)).toContain('Behind');
    // Settled: the sweep and the purge leave it alone.
    expect(await provisioning.ledger.sweep()).toBe(0);
    expect((await provisioning.purgeDue(new Date(Date.now() + 365 * 86_400_000))).purged).toBe(0);
  });
});
