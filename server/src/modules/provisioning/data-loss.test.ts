/**
 * Issue 11: repair never hides a loss. A READY clinic's database gone from outside is refused at
 * sign-in (alerted once), recreated by repairClinic only as a declared loss, and restored from
 * quarantine, rows intact, when a copy waits there.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { clinicWithAdmin } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';
import { quoteIdent, withClient } from '../../db/sql.js';

const admin = inject('pgAdminUrl');
const sink = await startSmtpSink();
afterAll(() => sink.stop());

const SIGN_IN = `mutation ($email: String!, $password: String!) {
  signInWithPassword(email: $email, password: $password) { __typename ... on Error { code } } }`;
const REPAIR = `mutation ($id: ID!) { repairClinic(clinicId: $id) {
  __typename ... on RepairClinicSuccess { dataLost actions after { dbStatus } } } }`;

interface RepairAnswer {
  repairClinic: { __typename: string; dataLost: boolean; actions: string[]; after: { dbStatus: string } };
}

describe('repair never hides a loss', async () => {
  const t = await startTestApp({
    SMTP_URL: sink.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db } = t.app.deps;
  const { prisma } = db;

  const signInCode = async (email: string) =>
    (
      await t.gql<{ signInWithPassword: { __typename: string; code?: string } }>(SIGN_IN, {
        email,
        password: 'a sturdy passphrase 42',
      })
    ).body.data?.signInWithPassword;

  const dropFromOutside = async (clinicId: string) => {
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    await provisioning.clients.evict(clinicId);
    await withClient(admin, (c) => c.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`));
    return clinic.databaseName;
  };

  const databaseExists = async (name: string) =>
    withClient(
      admin,
      async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1,
    );

  it('refuses sign-in to a READY clinic whose database vanished, alerting once, and recreates nothing', async () => {
    const { clinic, user } = await clinicWithAdmin(t, {}, sink);
    const name = await dropFromOutside(clinic.id);

    expect(await signInCode(user.email)).toEqual({
      __typename: 'ClinicUnavailableError',
      code: 'CLINIC_UNAVAILABLE',
    });
    expect(await signInCode(user.email)).toMatchObject({ code: 'CLINIC_UNAVAILABLE' });
    await provisioning.clinicsHealth(); // the sweep sees the same incident
    expect(await databaseExists(name)).toBe(false);
    expect((await provisioning.checkClinic(clinic.id)).dbStatus).toBe('MISSING');

    const alert = await sink.waitFor(
      (m) => /is missing/.test(m.subject ?? '') && (m.text ?? '').includes(clinic.id),
    );
    expect(alert.text).toContain(name);
    expect(
      await prisma.auditLog.count({ where: { clinicId: clinic.id, action: 'clinic.database_missing' } }),
    ).toBe(1);
    // Once per incident: one message per recipient, however many sign-ins and sweeps saw it.
    const recipients = await prisma.mailOutbox.findMany({ where: { kind: 'clinic_database_missing' } });
    expect(new Set(recipients.map((m) => m.toAddress)).size).toBe(recipients.length);

    // repairClinic recreates it, but as a declared loss: result, audit with the actor, alert.
    const headers = await t.superAdmin();
    const operator = await prisma.user.findFirstOrThrow({ where: { role: 'SUPER_ADMIN' } });
    const { body } = await t.gql<RepairAnswer>(REPAIR, { id: clinic.id }, headers);
    expect(body.data?.repairClinic).toMatchObject({
      __typename: 'RepairClinicSuccess',
      dataLost: true,
      after: { dbStatus: 'HEALTHY' },
    });
    expect(body.data?.repairClinic.actions.some((a) => /data is lost/.test(a))).toBe(true);
    const lost = await prisma.auditLog.findFirstOrThrow({
      where: { clinicId: clinic.id, action: 'clinic.data_lost' },
    });
    expect(lost.actorId).toBe(operator.id);
    await sink.waitFor((m) => /is lost/.test(m.subject ?? '') && (m.text ?? '').includes(clinic.id));
    expect(await signInCode(user.email)).toEqual({ __typename: 'AuthSession' });

    // A later loss is a new incident: alerted again.
    await dropFromOutside(clinic.id);
    expect(await signInCode(user.email)).toMatchObject({ code: 'CLINIC_UNAVAILABLE' });
    expect(
      await prisma.auditLog.count({ where: { clinicId: clinic.id, action: 'clinic.database_missing' } }),
    ).toBe(2);
    expect((await provisioning.repairClinic(clinic.id)).dataLost).toBe(true);
  });

  it('restores a quarantined database instead of recreating it, rows intact', async () => {
    const { clinic, user } = await clinicWithAdmin(t, {}, sink);
    const rows = await provisioning.clients.get(clinic.id);
    const kept = await rows.healthcareProvider.create({
      data: {
        userId: randomUUID(),
        firstName: 'Louis',
        lastName: 'Pasteur',
        email: `lp-${Date.now()}@example.com`,
      },
    });
    await provisioning.clients.evict(clinic.id);
    await provisioning.ledger.quarantineClinic(clinic.id, 'test: taken for an orphan', 3600);
    expect((await provisioning.checkClinic(clinic.id)).dbStatus).toBe('MISSING');
    expect(await signInCode(user.email)).toMatchObject({ code: 'CLINIC_UNAVAILABLE' });

    const { body } = await t.gql<RepairAnswer>(REPAIR, { id: clinic.id }, await t.superAdmin());
    expect(body.data?.repairClinic).toMatchObject({ dataLost: false, after: { dbStatus: 'HEALTHY' } });
    const { databaseName } = await prisma.clinic.findUniqueOrThrow({ where: { id: clinic.id } });
    expect(body.data?.repairClinic.actions).toContain(`restored database ${databaseName} from quarantine`);
    // A REPAIR run, recorded and streamed like a registration, and audited with its run.
    const runs = await prisma.provisioningRun.findMany({
      where: { clinicId: clinic.id, kind: 'REPAIR' },
      include: { steps: { orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }] } },
    });
    expect(runs.map((run) => run.status)).toEqual(['SUCCEEDED']);
    expect(runs[0]?.steps.map((step) => step.name)).toEqual([
      'create_database',
      'migrate_database',
      'seed_provider',
      'verify_database',
      'commit',
    ]);
    const repaired = await prisma.auditLog.findFirstOrThrow({
      where: { clinicId: clinic.id, action: 'clinic.repair' },
      orderBy: { id: 'desc' },
    });
    expect(repaired.data).toMatchObject({ runId: runs[0]?.id, dataLost: false });
    const again = await provisioning.clients.get(clinic.id);
    expect(await again.healthcareProvider.findUnique({ where: { id: kept.id } })).toMatchObject({
      lastName: 'Pasteur',
    });
    expect(await prisma.auditLog.count({ where: { clinicId: clinic.id, action: 'clinic.data_lost' } })).toBe(
      0,
    );
    expect(await signInCode(user.email)).toEqual({ __typename: 'AuthSession' });
  });
});
