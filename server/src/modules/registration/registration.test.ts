import pg from 'pg';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { resolverFor } from '../../../test/dns-client.js';
import { startTestApp, type TestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';
import { withClient } from '../../db/sql.js';

const admin = inject('pgAdminUrl');
const sink = await startSmtpSink();
afterAll(() => sink.stop());

const REGISTER = `mutation Register($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { status clinic { id name subdomain status } user { id email role emailVerified } }
    ... on Error { code message }
    ... on ValidationError { fields { path message } }
    ... on ProvisioningFailedError { step runId }
  }
}`;

interface RegisterResult {
  registerClinic: {
    __typename: string;
    status?: 'READY' | 'PENDING';
    clinic?: { id: string; name: string; subdomain: string; status: string };
    user?: { id: string; email: string; role: string; emailVerified: boolean };
    code?: string;
    message?: string;
    fields?: { path: string[]; message: string }[];
    step?: string;
    runId?: string;
  };
}

let counter = 0;
function input(overrides: Record<string, unknown> = {}) {
  counter += 1;
  return {
    clinicName: `Clinique ${counter}`,
    country: 'FR',
    adminEmail: `admin${counter}-${Date.now()}@example.com`,
    adminPassword: 'a sturdy passphrase 42',
    adminFirstName: 'Marie',
    adminLastName: 'Curie',
    acceptedDocuments: CURRENT_ACCEPTANCES,
    ...overrides,
  };
}

async function register(t: TestApp, overrides: Record<string, unknown> = {}) {
  const { body } = await t.gql<RegisterResult>(REGISTER, { input: input(overrides) });
  if (!body.data) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data.registerClinic;
}

/** Tagged clinic databases and roles of `t`'s deployment on the shared server. */
async function ownedObjects(t: TestApp) {
  const tag = `onramp:${t.app.deps.db.deploymentId}`;
  return withClient(admin, async (client) => ({
    databases: (
      await client.query("SELECT 1 FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1", [tag])
    ).rowCount,
    roles: (
      await client.query("SELECT 1 FROM pg_roles WHERE shobj_description(oid, 'pg_authid') = $1", [tag])
    ).rowCount,
  }));
}

async function expectNoZombies(t: TestApp) {
  const report = await t.app.deps.reconciler.zombieReport();
  expect(report.accounts).toEqual([]);
  expect(report.orphans).toEqual([]);
}

/** The recipients of a parsed message, as text. */
const to = (message: { to?: { text: string } | { text: string }[] }) =>
  (Array.isArray(message.to) ? message.to : message.to ? [message.to] : [])
    .map((address) => address.text)
    .join(', ');
const sentTo = (email: string) => (message: Parameters<typeof to>[0]) => to(message).includes(email);

const tokenOf = (text: string) => /verify-email\?token=([A-Za-z0-9_-]+)/.exec(text)?.[1] ?? '';

describe('registerClinic in strict mode', async () => {
  const t = await startTestApp({
    SMTP_URL: sink.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = t.app.deps.db;
  afterEach(() => expectNoZombies(t));

  it('provisions a READY clinic, e-mails a verification link through SMTP, and verifies it once', async () => {
    const result = await register(t, {
      adminEmail: '  Marie.Curie@Example.COM ',
      clinicName: '  Clinique Pasteur  ',
    });
    expect(result).toMatchObject({
      __typename: 'RegisterClinicSuccess',
      status: 'READY',
      clinic: { name: 'Clinique Pasteur', status: 'READY', subdomain: 'clinique-pasteur' },
      user: { email: 'marie.curie@example.com', role: 'CLINIC_ADMIN', emailVerified: false },
    });
    const clinicId = result.clinic?.id as string;
    expect((await t.app.deps.provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    const user = await prisma.user.findUniqueOrThrow({ where: { email: 'marie.curie@example.com' } });
    expect(user.passwordHash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);

    const mail = await sink.waitFor(sentTo('marie.curie@example.com'));
    expect(mail.subject).toBe('Confirm your e-mail for Clinique Pasteur');
    const token = tokenOf(mail.text ?? '');
    expect(token).toHaveLength(43);
    expect(await prisma.emailVerificationToken.count({ where: { tokenHash: token } })).toBe(0); // stored hashed

    const VERIFY =
      'mutation ($t: String!) { verifyEmail(token: $t) { __typename ... on VerifyEmailSuccess { user { emailVerified } } ... on Error { code } } }';
    expect((await t.gql(VERIFY, { t: token })).body.data).toEqual({
      verifyEmail: { __typename: 'VerifyEmailSuccess', user: { emailVerified: true } },
    });
    expect((await t.gql(VERIFY, { t: token })).body.data).toEqual({
      verifyEmail: { __typename: 'InvalidCodeError', code: 'INVALID_CODE' },
    });
    expect((await t.gql(VERIFY, { t: 'not-a-token' })).body.data).toEqual({
      verifyEmail: { __typename: 'InvalidCodeError', code: 'INVALID_CODE' },
    });
  });

  it('publishes the clinic’s subdomain in the built-in DNS and issues its certificate; deleteClinic removes both', async () => {
    const result = await register(t, { clinicName: 'Clinique Dns Ssl' });
    expect(result).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    const fqdn = `${result.clinic?.subdomain}.${t.config.baseDomain}`;
    expect(await resolverFor(t.dnsPort).resolve4(fqdn)).toEqual(['127.0.0.1']);
    const certificate = await prisma.certificate.findFirstOrThrow({ where: { fqdn, revokedAt: null } });
    expect(certificate.issuer).toBe('builtin');
    expect((await t.app.deps.certificates.ensureCertificate(fqdn)).serialNumber).toBe(
      certificate.serialNumber,
    );
    const run = await prisma.provisioningRun.findFirstOrThrow({
      where: { clinicId: result.clinic?.id },
      include: { steps: true },
    });
    expect(run.steps.filter((s) => s.name === 'dns' || s.name === 'ssl').map((s) => s.status)).toEqual([
      'SUCCEEDED',
      'SUCCEEDED',
    ]);

    const deleted = await t.gql(
      'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
      { id: result.clinic?.id },
      await t.superAdmin(),
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    await expect(resolverFor(t.dnsPort).resolve4(fqdn)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await prisma.certificate.count({ where: { fqdn, revokedAt: null } })).toBe(0);
  });

  it('a strict failure at ssl unpublishes the DNS record it had published and leaves no certificate', async () => {
    t.app.deps.provisioning.injectFault('ssl', 1);
    const before = {
      records: await prisma.dnsRecord.count(),
      certificates: await prisma.certificate.count({ where: { revokedAt: null } }),
    };
    const failed = await register(t, { clinicName: 'Clinique Ssl Fault' });
    expect(failed).toMatchObject({ __typename: 'ProvisioningFailedError', step: 'ssl' });
    const run = await prisma.provisioningRun.findUniqueOrThrow({
      where: { id: failed.runId as string },
      include: { steps: { orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }] } },
    });
    // dns did run (and publish) before it was rolled back.
    expect(run.steps.find((s) => s.name === 'dns')?.status).toBe('ROLLED_BACK');
    expect({
      records: await prisma.dnsRecord.count(),
      certificates: await prisma.certificate.count({ where: { revokedAt: null } }),
    }).toEqual(before);
    await expect(
      resolverFor(t.dnsPort).resolve4(`clinique-ssl-fault.${t.config.baseDomain}`),
    ).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('refuses an expired verification link', async () => {
    const result = await register(t);
    const email = result.user?.email as string;
    const mail = await sink.waitFor(sentTo(email));
    await prisma.emailVerificationToken.updateMany({
      where: { user: { email } },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const { body } = await t.gql('mutation ($t: String!) { verifyEmail(token: $t) { __typename } }', {
      t: tokenOf(mail.text ?? ''),
    });
    expect(body.data).toEqual({ verifyEmail: { __typename: 'InvalidCodeError' } });
  });

  it('answers resendVerificationEmail the same for any e-mail, and re-sends only to unverified users', async () => {
    const result = await register(t);
    const email = result.user?.email as string;
    await sink.waitFor(sentTo(email));
    await prisma.mailOutbox.updateMany({
      where: { toAddress: email },
      data: { createdAt: new Date(Date.now() - 120_000) },
    });
    const RESEND =
      'mutation ($e: String!) { resendVerificationEmail(email: $e) { __typename ... on ResendVerificationEmailSuccess { accepted } } }';
    const known = await t.gql(RESEND, { e: email.toUpperCase() });
    const unknown = await t.gql(RESEND, { e: 'nobody@example.com' });
    expect(known.body).toEqual(unknown.body);
    await expect
      .poll(() => prisma.mailOutbox.count({ where: { toAddress: email, kind: 'email_verification' } }))
      .toBe(2);
    expect(await prisma.mailOutbox.count({ where: { toAddress: 'nobody@example.com' } })).toBe(0);
  });

  const faultSteps = [
    'central_records',
    'subdomain',
    'create_database',
    'migrate_database',
    'verify_database',
    'seed_provider',
    'dns',
    'ssl',
    'commit',
  ];
  it.each(faultSteps)(
    'a fault at %s leaves nothing, and the same e-mail registers again at once',
    async (step) => {
      const before = {
        companies: await prisma.company.count(),
        users: await prisma.user.count(),
        objects: await ownedObjects(t),
        dnsRecords: await prisma.dnsRecord.count(),
        certificates: await prisma.certificate.count({ where: { revokedAt: null } }),
      };
      t.app.deps.provisioning.injectFault(step as never, 1);
      const email = `fault-${step}@example.com`;
      const failed = await register(t, { adminEmail: email });
      expect(failed).toMatchObject({
        __typename: 'ProvisioningFailedError',
        code: 'PROVISIONING_FAILED',
        step,
      });
      expect({
        companies: await prisma.company.count(),
        users: await prisma.user.count(),
        objects: await ownedObjects(t),
        dnsRecords: await prisma.dnsRecord.count(),
        certificates: await prisma.certificate.count({ where: { revokedAt: null } }),
      }).toEqual(before);
      expect(await prisma.mailOutbox.count({ where: { toAddress: email } })).toBe(0);
      const again = await register(t, { adminEmail: email });
      expect(again).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    },
  );

  it('records every step of a successful registration SUCCEEDED, the verification e-mail too', async () => {
    const result = await register(t);
    expect(result).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    const { body } = await t.gql<{
      provisioningRuns: { status: string; steps: { name: string; status: string }[] }[];
    }>(
      'query ($id: ID!) { provisioningRuns(clinicId: $id) { status steps { name status } } }',
      { id: result.clinic?.id },
      await t.superAdmin(),
    );
    const [run, ...others] = body.data?.provisioningRuns ?? [];
    expect(others).toEqual([]);
    expect(run?.status).toBe('SUCCEEDED');
    expect(run?.steps.find((step) => step.name === 'verification_email')).toEqual({
      name: 'verification_email',
      status: 'SUCCEEDED',
    });
    expect(run?.steps.filter((step) => step.status !== 'SUCCEEDED')).toEqual([]);
    expect(run?.steps).toHaveLength(10);
  });

  it('keeps a finished registration when only the verification e-mail step fails', async () => {
    t.app.deps.provisioning.injectFault('verification_email', 1);
    const result = await register(t);
    expect(result).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    const runs = await prisma.provisioningRun.findMany({
      where: { clinicId: result.clinic?.id },
      include: { steps: true },
    });
    expect(runs[0]?.status).toBe('SUCCEEDED');
    expect(runs[0]?.steps.find((s) => s.name === 'verification_email')?.status).toBe('FAILED');
  });

  it('lets exactly one of 8 simultaneous registrations of one e-mail win', async () => {
    const email = `race-${Date.now()}@example.com`;
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => register(t, { adminEmail: email, clinicName: `Race ${i}` })),
    );
    const kinds = results.map((r) => r.__typename).sort();
    expect(kinds).toEqual([
      'EmailTakenError',
      'EmailTakenError',
      'EmailTakenError',
      'EmailTakenError',
      'EmailTakenError',
      'EmailTakenError',
      'EmailTakenError',
      'RegisterClinicSuccess',
    ]);
    expect(results.find((r) => r.code)?.code).toBe('EMAIL_TAKEN');
    expect(await prisma.user.count({ where: { email } })).toBe(1);
  });

  it('answers EmailTakenError when the e-mail is taken after the fast path, from central_records’ unique violation, and rolls its company and clinic back', async () => {
    const email = `late-${Date.now()}@example.com`;
    const clinicName = `Late Clinic ${counter}`;
    const companies = await prisma.company.count();
    // Another account of the e-mail, inserted but not committed: the fast path does not see it,
    // central_records' insert waits on its unique key, then violates it once it commits.
    const other = new pg.Client({ connectionString: t.config.databaseUrl });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        "INSERT INTO users (email, first_name, last_name, role) VALUES ($1, 'Other', 'Account', 'SUPER_ADMIN')",
        [email],
      );
      const answer = register(t, { adminEmail: email, clinicName });
      // Polled from its own session: pg_stat_activity is read once per transaction.
      await expect
        .poll(
          () =>
            withClient(t.config.databaseUrl as string, async (client) => {
              const { rows } = await client.query(
                `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query ILIKE '%INSERT INTO users%'`,
              );
              return rows.length;
            }),
          { timeout: 20_000, interval: 20 },
        )
        .toBe(1);
      await other.query('COMMIT');
      expect(await answer).toMatchObject({ __typename: 'EmailTakenError', code: 'EMAIL_TAKEN' });
    } finally {
      await other.query('ROLLBACK').catch(() => {});
      await other.end();
    }
    expect(await prisma.clinic.count({ where: { name: clinicName } })).toBe(0);
    expect(await prisma.company.count()).toBe(companies);
    expect(await prisma.user.count({ where: { email } })).toBe(1);
    await prisma.user.deleteMany({ where: { email } });
  });

  it('answers EmailTakenError for a unique violation in central_records’ hook (a taken phone, unseen by the fast path) and rolls its company and clinic back', async () => {
    const phone = `+3361${String(Date.now()).slice(-7)}`;
    expect(await register(t, { adminPhone: phone })).toMatchObject({ __typename: 'RegisterClinicSuccess' });
    const before = { companies: await prisma.company.count(), clinics: await prisma.clinic.count() };
    const email = `phone-taken-${Date.now()}@example.com`;
    // The fast path looks for the e-mail only: the admin's insert violates users_phone_key, which
    // registration answered as EMAIL_TAKEN through Prisma (any unique violation there) and still does.
    expect(await register(t, { adminEmail: email, adminPhone: phone })).toMatchObject({
      __typename: 'EmailTakenError',
      code: 'EMAIL_TAKEN',
    });
    expect({ companies: await prisma.company.count(), clinics: await prisma.clinic.count() }).toEqual(before);
    expect(await prisma.user.count({ where: { email } })).toBe(0);
  });

  it('gives two clinics with the same name distinct subdomains and databases', async () => {
    const [a, b] = [
      await register(t, { clinicName: 'Twin Clinic' }),
      await register(t, { clinicName: 'Twin Clinic' }),
    ];
    expect(a.clinic?.subdomain).not.toBe(b.clinic?.subdomain);
    const names = await prisma.clinic.findMany({
      where: { id: { in: [a.clinic?.id as string, b.clinic?.id as string] } },
    });
    expect(new Set(names.map((clinic) => clinic.databaseName)).size).toBe(2);
    expect([a.clinic?.subdomain, b.clinic?.subdomain]).toContain('twin-clinic');
  });

  it.each([
    ['clinicName', { clinicName: ' A ' }, 'Clinic name must be at least 2 characters'],
    ['clinicName', { clinicName: 'x'.repeat(121) }, 'Clinic name must be at most 120 characters'],
    ['clinicName', { clinicName: 'x'.repeat(10_000) }, 'Clinic name must be at most 120 characters'],
    ['country', { country: 'XX' }, 'Country must be an ISO 3166-1 alpha-2 code, e.g. FR'],
    ['country', { country: 'France' }, 'Country must be an ISO 3166-1 alpha-2 code, e.g. FR'],
    ['adminEmail', { adminEmail: 'not-an-email' }, 'Enter a valid e-mail address'],
    ['adminPassword', { adminPassword: 'short' }, 'Password must be at least 12 characters'],
    ['adminPassword', { adminPassword: 'Password1234' }, 'This password is too common; choose another'],
    [
      'adminPassword',
      { adminEmail: 'samesame@example.com', adminPassword: 'samesame@example.com' },
      'Password must not be your e-mail address',
    ],
    ['adminPassword', { adminPassword: 'p'.repeat(257) }, 'Password must be at most 256 characters'],
    ['adminFirstName', { adminFirstName: '   ' }, 'First name is required'],
    ['adminLastName', { adminLastName: 'y'.repeat(101) }, 'Last name must be at most 100 characters'],
    ['adminPhone', { adminPhone: '0612' }, 'Phone must be in international format, e.g. +33612345678'],
  ])('rejects a bad %s with a ValidationError and creates nothing', async (field, overrides, message) => {
    const companies = await prisma.company.count();
    const result = await register(t, overrides);
    expect(result.__typename).toBe('ValidationError');
    expect(result.code).toBe('VALIDATION_FAILED');
    expect(result.fields).toContainEqual({ path: ['input', field], message });
    expect(await prisma.company.count()).toBe(companies);
  });

  it('reports every invalid field at once', async () => {
    const result = await register(t, { clinicName: '', country: '', adminEmail: '', adminPassword: '' });
    expect([...new Set(result.fields?.map((f) => f.path[1]))].sort()).toEqual([
      'adminEmail',
      'adminPassword',
      'clinicName',
      'country',
    ]);
  });

  it('accepts a phone in any usual notation and stores it normalised', async () => {
    const result = await register(t, { adminPhone: '+33 6 12-34-56-78' });
    const user = await prisma.user.findUniqueOrThrow({ where: { id: result.user?.id } });
    expect(user.phone).toBe('+33612345678');
  });
});

describe('registerClinic in hybrid mode', async () => {
  const t = await startTestApp({
    SMTP_URL: sink.url,
    REGISTRATION_MODE: 'hybrid',
    PROVISIONING_RETRY_BASE_MS: '50',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = t.app.deps.db;
  afterEach(() => expectNoZombies(t));

  const statusOf = async (clinicId: string) =>
    (await prisma.clinic.findUnique({ where: { id: clinicId } }))?.status;

  it('registers READY at once when nothing fails', async () => {
    expect(await register(t)).toMatchObject({ status: 'READY' });
  });

  it.each([1, 2])('recovers in the background after %i transient failure(s)', async (failures) => {
    t.app.deps.provisioning.injectFault('create_database', failures);
    const result = await register(t);
    expect(result).toMatchObject({
      __typename: 'RegisterClinicSuccess',
      status: 'PENDING',
      clinic: { status: 'PENDING' },
    });
    const clinicId = result.clinic?.id as string;
    await expect.poll(() => statusOf(clinicId), { timeout: 15_000, interval: 100 }).toBe('READY');
    expect((await t.app.deps.provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    const runs = await prisma.provisioningRun.findMany({
      where: { clinicId },
      orderBy: { startedAt: 'asc' },
    });
    expect(runs.map((run) => [run.attempt, run.status])).toEqual([
      ...Array.from({ length: failures }, (_, i) => [i + 1, 'FAILED']),
      [failures + 1, 'SUCCEEDED'],
    ]);
    await sink.waitFor(sentTo(result.user?.email as string));
  });

  it('gives up cleanly after three failures: database and role gone, clinic FAILED, super-admins alerted', async () => {
    const before = await ownedObjects(t);
    t.app.deps.provisioning.injectFault('create_database', 3);
    const result = await register(t);
    expect(result.status).toBe('PENDING');
    const clinicId = result.clinic?.id as string;
    await expect.poll(() => statusOf(clinicId), { timeout: 15_000, interval: 100 }).toBe('FAILED');
    expect(await ownedObjects(t)).toEqual(before);
    const alert = await sink.waitFor((m) => m.subject?.includes('provisioning of') ?? false);
    expect(to(alert)).toContain('admin@onramp.localhost');
    expect(await prisma.auditLog.count({ where: { action: 'registration.failed', clinicId } })).toBe(1);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/onramp_provisioning_runs_total\{kind="REGISTER",outcome="failure"\} [1-9]/);
  });

  it('fails at once, without a job, on a failure that is not transient', async () => {
    // A clinic name that passes validation cannot make central_records fail; a taken e-mail can.
    const first = await register(t);
    const provisionJobs = async () =>
      (
        await prisma.$queryRaw<{ n: number }[]>`
          SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE task_identifier = 'provision_clinic'`
      )[0]?.n;
    const before = { jobs: await provisionJobs(), clinics: await prisma.clinic.count() };
    const second = await register(t, { adminEmail: first.user?.email });
    expect(second).toMatchObject({ __typename: 'EmailTakenError', code: 'EMAIL_TAKEN' });
    expect({ jobs: await provisionJobs(), clinics: await prisma.clinic.count() }).toEqual(before);
  });
});

describe('a hybrid registration whose provisioning job failed for good', async () => {
  // Retries far off, so that the job waits while this test fails it as decision 084 does.
  const t = await startTestApp({
    REGISTRATION_MODE: 'hybrid',
    PROVISIONING_RETRY_BASE_MS: '600000',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = t.app.deps.db;

  it('shows in the zombie report with its reason, and ends READY once run again as decision 084 says', async () => {
    t.app.deps.provisioning.injectFault('create_database', 1);
    const result = await register(t);
    expect(result.status).toBe('PENDING');
    const clinicId = result.clinic?.id as string;
    const key = `provision:${clinicId}`;
    const reason = "its worker's process died while running it 3 times: not run again (decision 084)";
    await prisma.$executeRaw`SELECT graphile_worker.permanently_fail_jobs(
      ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = ${key}), ${reason})`;
    const report = await t.app.deps.reconciler.zombieReport();
    expect(report.accounts.filter((account) => account.clinicId === clinicId)).toEqual([
      expect.objectContaining({ status: 'PENDING', reason: `provisioning job failed for good: ${reason}` }),
    ]);
    // A reconcile pass leaves it alone: kept for an operator, not undone on an inference.
    await t.app.deps.reconciler.reconcile();
    expect((await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).status).toBe('PENDING');

    // The operator's way back (decision 084).
    await prisma.$executeRaw`SELECT graphile_worker.reschedule_jobs(
      ARRAY(SELECT id FROM graphile_worker.jobs WHERE key = ${key}), run_at := now(), attempts := 0)`;
    await expect
      .poll(async () => (await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).status, {
        timeout: 20_000,
        interval: 100,
      })
      .toBe('READY');
    await expectNoZombies(t);
  });
});
