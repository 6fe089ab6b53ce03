import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic, RegistrationRefused } from '../../../test/registration-flow.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import { clinicPassword, clinicRoleUrl } from './integrity.js';
import { clinicRoleName } from './names.js';
import { PROVISIONING_STEP_NAMES, type ProvisioningStepName } from './step-names.js';

const admin = inject('pgAdminUrl');
/** An event of no run, to see when a subscription is live. */
const PROBE = {
  runId: '00000000-0000-4000-8000-000000000001',
  kind: 'REGISTER' as const,
  subject: { kind: 'CLINIC' as const, id: '00000000-0000-4000-8000-000000000000', name: null },
  step: 'probe' as ProvisioningStepName,
  status: 'STARTED' as const,
  attempt: 1,
  message: null,
  durationMs: null,
};

async function catalog(databaseName: string, roleName: string) {
  return withClient(admin, async (client) => ({
    database:
      ((await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [databaseName])).rowCount ?? 0) >
      0,
    role: ((await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [roleName])).rowCount ?? 0) > 0,
  }));
}

describe('the provisioning engine', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, db } = t.app.deps;
  const prisma = db.prisma;

  const provision = (name = 'Clinique du Parc', country = 'FR') =>
    createClinic(t, { clinicName: name, country, adminFirstName: 'Ada', adminLastName: 'Lovelace' });

  it('provisions a clinic: database cloned, role able to connect, provider seeded, run recorded', async () => {
    const { clinicId, runId, admin: clinicAdmin } = await provision();
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    expect(clinic.status).toBe('READY');
    expect(clinic.schemaVersion).toBe(db.clinicServers[0]?.template.version);
    expect(clinic.databasePasswordEnc).toMatch(/^v1\./);
    expect(await catalog(clinic.databaseName, clinic.databaseRole)).toEqual({ database: true, role: true });

    const health = await provisioning.checkClinic(clinicId);
    expect(health).toMatchObject({ dbStatus: 'HEALTHY', missingTables: [], errors: [] });
    expect(health.tablesCount).toBe(health.expectedTables);

    const providers = await (await provisioning.clients.get(clinicId)).healthcareProvider.findMany();
    expect(providers).toMatchObject([{ firstName: 'Ada', lastName: 'Lovelace', email: clinicAdmin.email }]);

    const run = await prisma.provisioningRun.findUniqueOrThrow({
      where: { id: runId },
      include: { steps: true },
    });
    expect(run.status).toBe('SUCCEEDED');
    expect(run.steps.map((step) => [step.name, step.status]).sort()).toEqual(
      [
        ['central_records', 'SUCCEEDED'],
        ['subdomain', 'SUCCEEDED'],
        ['create_database', 'SUCCEEDED'],
        ['migrate_database', 'SUCCEEDED'],
        ['verify_database', 'SUCCEEDED'],
        ['seed_provider', 'SUCCEEDED'],
        ['dns', 'SUCCEEDED'],
        ['ssl', 'SUCCEEDED'],
        ['commit', 'SUCCEEDED'],
        // The commit queued the admin's verification e-mail: the step that checks it is done too.
        ['verification_email', 'SUCCEEDED'],
      ].sort(),
    );
    expect(run.steps.every((step) => step.durationMs !== null && step.durationMs >= 0)).toBe(true);
  });

  it('keeps other roles out of a clinic database', async () => {
    const [mine, theirs] = [await provision('Isolated'), await provision('Neighbour')];
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: mine.clinicId } });
    const other = await prisma.clinic.findUniqueOrThrow({ where: { id: theirs.clinicId } });
    // The other clinic's role, with its real password, is refused by CONNECT privileges.
    const password = clinicPassword(other, t.config.encryptionKey);
    expect(password).toBeTruthy();
    const url = clinicRoleUrl(admin, clinic.databaseName, other.databaseRole, password as string);
    await expect(withClient(url, (client) => client.query('SELECT 1'))).rejects.toThrow(
      /permission denied for database/,
    );
    const own = clinicRoleUrl(admin, other.databaseName, other.databaseRole, password as string);
    expect((await withClient(own, (client) => client.query('SELECT 1 AS ok'))).rows).toEqual([{ ok: 1 }]);
    const grants = await withClient(
      admin,
      async (client) =>
        (
          await client.query<{ ok: boolean }>(
            `SELECT has_database_privilege('public', $1, 'CONNECT') AS ok`,
            [clinic.databaseName],
          )
        ).rows[0]?.ok,
    );
    expect(grants).toBe(false);
  });

  const databaseSteps: ProvisioningStepName[] = [
    'central_records',
    'create_database',
    'migrate_database',
    'verify_database',
    'seed_provider',
    'commit',
  ];
  it.each(databaseSteps)(
    'a fault at %s rolls everything back: no company, clinic, database or role',
    async (step) => {
      const before = await prisma.company.count();
      provisioning.injectFault(step, 1);
      const error = await provision(`Fault at ${step}`).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistrationRefused);
      expect((error as RegistrationRefused).step).toBe(step);

      expect(await prisma.company.count()).toBe(before);
      expect(await prisma.clinic.count({ where: { name: `Fault at ${step}` } })).toBe(0);
      const run = await prisma.provisioningRun.findUniqueOrThrow({
        where: { id: (error as RegistrationRefused).runId },
        include: { steps: true },
      });
      expect(run.status).toBe('ROLLED_BACK');
      const statuses = Object.fromEntries(run.steps.map((s) => [s.name, s.status]));
      expect(statuses[step]).toBe('FAILED');
      for (const done of databaseSteps.slice(0, databaseSteps.indexOf(step)))
        expect(statuses[done]).toBe('ROLLED_BACK');

      const leftovers = await withClient(admin, async (client) => ({
        databases: (
          await client.query("SELECT datname FROM pg_database WHERE datname LIKE 'clinic\\_fault\\_at%'")
        ).rows,
      }));
      expect(leftovers.databases).toEqual([]);
      // This run's own role (its name comes from the clinic id the run recorded), not any role of
      // the shared server: other files register clinics on it at the same time.
      if (!run.clinicId) throw new Error('a REGISTER run records its clinic');
      const roles = await withClient(
        admin,
        async (client) =>
          (
            await client.query<{ rolname: string }>('SELECT rolname FROM pg_roles WHERE rolname = $1', [
              clinicRoleName(run.clinicId as string),
            ])
          ).rows,
      );
      expect(roles).toEqual([]);
    },
  );

  it('derives safe names from any clinic name: scripts, quotes, SQL, the longest accepted', async () => {
    const names = [
      '東京クリニック',
      `Robert'); DROP DATABASE postgres; --`,
      'Clinic "quoted" \\ back',
      'x'.repeat(120), // registration's maximum; a longer name is a ValidationError (registration.test.ts)
      'Émergence Santé — Zürich',
    ];
    for (const name of names) {
      const { clinicId } = await provision(name);
      const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
      expect(clinic.name).toBe(name);
      expect(clinic.databaseName).toMatch(/^clinic_[a-z0-9_]{1,40}$/);
      expect(Buffer.byteLength(clinic.databaseName)).toBeLessThanOrEqual(63);
      expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    }
    expect(
      await withClient(
        admin,
        async (c) => (await c.query("SELECT 1 FROM pg_database WHERE datname = 'postgres'")).rowCount,
      ),
    ).toBe(1);
  });

  it('fails cleanly and undoes itself when the server refuses CREATE DATABASE', async () => {
    const server = db.clinicServers[0];
    if (!server) throw new Error('no server');
    const template = quoteIdent(server.template.name);
    // A session on the template makes PostgreSQL refuse to copy it.
    await withClient(admin, (c) => c.query(`ALTER DATABASE ${template} WITH ALLOW_CONNECTIONS true`));
    // withClient keeps its connection to the template open while provisioning runs.
    const blocker = await withClient(databaseUrl(admin, server.template.name), () =>
      provision('Refused').catch((e: unknown) => e),
    ).finally(() =>
      withClient(admin, (c) => c.query(`ALTER DATABASE ${template} WITH ALLOW_CONNECTIONS false`)),
    );
    expect(blocker).toBeInstanceOf(RegistrationRefused);
    expect((blocker as RegistrationRefused).step).toBe('create_database');
    expect(await prisma.clinic.count({ where: { name: 'Refused' } })).toBe(0);
  });

  it('reports each health state and repairs missing databases, tables and roles', async () => {
    const { clinicId, admin: registered } = await provision('Fragile');
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const clinicDb = databaseUrl(admin, clinic.databaseName);

    // DEGRADED: a table is gone.
    await withClient(clinicDb, (c) => c.query('DROP TABLE availability'));
    let health = await provisioning.checkClinic(clinicId);
    expect(health).toMatchObject({ dbStatus: 'DEGRADED', missingTables: ['availability'] });
    let repair = await provisioning.repairClinic(clinicId);
    expect(repair.alreadyHealthy).toBe(false);
    expect(repair.actions).toContain('recreated table availability');
    expect(repair.after.dbStatus).toBe('HEALTHY');

    // UNHEALTHY: the role is gone.
    await provisioning.clients.evict(clinicId);
    await withClient(admin, async (c) => {
      await c.query(`DROP OWNED BY ${quoteIdent(clinic.databaseRole)}`);
      await withClient(clinicDb, (d) => d.query(`DROP OWNED BY ${quoteIdent(clinic.databaseRole)}`));
      await c.query(`DROP ROLE ${quoteIdent(clinic.databaseRole)}`);
    });
    health = await provisioning.checkClinic(clinicId);
    expect(health.dbStatus).toBe('UNHEALTHY');
    repair = await provisioning.repairClinic(clinicId);
    expect(repair.actions).toContain(`recreated role ${clinic.databaseRole}`);
    expect(repair.after.dbStatus).toBe('HEALTHY');

    // MISSING: the database is gone; the provider is re-seeded for the clinic's admin user.
    await provisioning.clients.evict(clinicId);
    await withClient(admin, (c) => c.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`));
    health = await provisioning.checkClinic(clinicId);
    expect(health).toMatchObject({ dbStatus: 'MISSING', tablesCount: 0 });
    repair = await provisioning.repairClinic(clinicId);
    expect(repair.before.dbStatus).toBe('MISSING');
    expect(repair.actions[0]).toMatch(/^recreated database/);
    expect(repair.actions).toContain('seeded the healthcare provider of the clinic admin');
    expect(repair.after.dbStatus).toBe('HEALTHY');
    const providers = await (await provisioning.clients.get(clinicId)).healthcareProvider.findMany();
    expect(providers.map((p) => p.userId)).toEqual([registered.id]);

    // Idempotent: nothing left to do.
    const again = await provisioning.repairClinic(clinicId);
    expect(again).toMatchObject({ alreadyHealthy: true, actions: [] });
    expect(await prisma.auditLog.count({ where: { action: 'clinic.repair', clinicId } })).toBe(3);
  });

  it('reports PROVISIONING without probing a clinic still being created', async () => {
    const { clinicId } = await provision('Busy');
    await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'PENDING' } });
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('PROVISIONING');
    await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'READY' } });
  });

  it('deletes a clinic: DELETED, its database kept in quarantine, then purged after the retention', async () => {
    const { clinicId } = await provision('Short-lived');
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const mutation = `mutation { deleteClinic(clinicId: "${clinicId}") { __typename ... on DeleteClinicSuccess { clinicId } } }`;
    expect((await t.gql(mutation)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const { body } = await t.gql(mutation, undefined, await t.superAdmin());
    expect(body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess', clinicId } });
    // Under its own name it is gone; kept renamed, closed, listed in quarantine.
    expect(await catalog(clinic.databaseName, clinic.databaseRole)).toEqual({ database: false, role: true });
    expect(await prisma.clinic.findUnique({ where: { id: clinicId } })).toMatchObject({ status: 'DELETED' });
    const kept = await prisma.clinicObject.findFirstOrThrow({ where: { clinicId, kind: 'DATABASE' } });
    expect(kept).toMatchObject({ state: 'QUARANTINED', reason: 'clinic deleted' });
    expect(await catalog(kept.trashName as string, clinic.databaseRole)).toEqual({
      database: true,
      role: true,
    });
    // The purge drops it only once its retention ended.
    expect((await t.app.deps.provisioning.ledger.purgeDue()).purged).toBe(0);
    const later = new Date(Date.now() + 31 * 86_400_000);
    expect((await t.app.deps.provisioning.ledger.purgeDue(later)).purged).toBe(2);
    expect(await catalog(kept.trashName as string, clinic.databaseRole)).toEqual({
      database: false,
      role: false,
    });
  });

  it('answers clinicsHealth, clinic, clinics and provisioningRuns over GraphQL', async () => {
    const { clinicId } = await provision('Observed');
    const { body } = await t.gql<{
      clinicsHealth: { total: number; healthy: number; clinics: { clinicId: string; dbStatus: string }[] };
      clinic: { name: string; health: { dbStatus: string } };
      clinics: { edges: { node: { id: string } }[] };
      provisioningRuns: { status: string; steps: { name: string }[] }[];
      provisioningMetrics: { successes: number; failures: number };
    }>(
      `query Observe($id: ID!) {
        clinicsHealth { total healthy unhealthy clinics { clinicId dbStatus } }
        clinic(id: $id) { name health { dbStatus } }
        clinics(first: 100, status: READY) { edges { node { id } } }
        provisioningRuns(clinicId: $id) { status steps { name } }
        provisioningMetrics { successes failures p50Ms p95Ms }
      }`,
      { id: clinicId },
      await t.superAdmin(),
    );
    expect(body.data?.clinic).toEqual({ name: 'Observed', health: { dbStatus: 'HEALTHY' } });
    expect(body.data?.clinicsHealth.clinics).toContainEqual({ clinicId, dbStatus: 'HEALTHY' });
    expect(body.data?.clinics.edges.map((e) => e.node.id)).toContain(clinicId);
    expect(body.data?.provisioningRuns[0]?.status).toBe('SUCCEEDED');
    expect(body.data?.provisioningMetrics.successes).toBeGreaterThan(0);
    expect(body.data?.provisioningMetrics.failures).toBeGreaterThan(0);
  });

  it("lists every clinic's runs without clinicId, newest first, filtered by kind", async () => {
    const first = await provision('Charted A');
    const second = await provision('Charted B');
    const { body } = await t.gql<{
      provisioningRuns: { clinicId: string; kind: string; startedAt: string; durationMs: number | null }[];
    }>(
      '{ provisioningRuns(kind: REGISTER, first: 200) { clinicId kind startedAt durationMs } }',
      {},
      await t.superAdmin(),
    );
    const runs = body.data?.provisioningRuns ?? [];
    expect(runs.slice(0, 2).map((run) => run.clinicId)).toEqual([second.clinicId, first.clinicId]);
    expect(runs.every((run) => run.kind === 'REGISTER')).toBe(true);
    const times = runs.map((run) => Date.parse(run.startedAt));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(runs[0]?.durationMs).toBeGreaterThan(0);
    const deletes = await t.gql<{ provisioningRuns: { kind: string }[] }>(
      '{ provisioningRuns(kind: DELETE, first: 200) { kind } }',
      {},
      await t.superAdmin(),
    );
    expect(deletes.body.data?.provisioningRuns.every((run) => run.kind === 'DELETE')).toBe(true);
  });

  it('rejects a malformed clinic id with a ValidationError and an unknown one with NotFoundError', async () => {
    const bad = await t.gql(
      `mutation { repairClinic(clinicId: "1; DROP") { __typename ... on ValidationError { fields { path message } } } }`,
    );
    expect(bad.body.data).toEqual({
      repairClinic: {
        __typename: 'ValidationError',
        fields: [{ path: ['clinicId'], message: 'must be a clinic id (UUID)' }],
      },
    });
    const missing = await t.gql(
      `mutation { repairClinic(clinicId: "00000000-0000-4000-8000-000000000000") { __typename ... on Error { code message } } }`,
      undefined,
      await t.superAdmin(),
    );
    expect(missing.body.data).toEqual({
      repairClinic: { __typename: 'NotFoundError', code: 'NOT_FOUND', message: 'No such clinic' },
    });
  });

  it('streams every step of a run on provisioningProgress over WebSocket, and injectFault works over GraphQL', async () => {
    const client = t.ws({ connectionParams: await t.superAdmin() });
    const events: { step: string; status: string; clinicId: string }[] = [];
    let probed = false;
    const done = new Promise<void>((resolve, reject) => {
      client.subscribe<{ provisioningProgress: { step: string; status: string; clinicId: string } }>(
        {
          query:
            'subscription { provisioningProgress { runId clinicId step status attempt message at durationMs } }',
        },
        {
          next: ({ data }) => {
            if (!data) return;
            if (data.provisioningProgress.clinicId === PROBE.subject.id) {
              probed = true;
              return;
            }
            events.push(data.provisioningProgress);
            if (
              data.provisioningProgress.step === 'central_records' &&
              data.provisioningProgress.status === 'ROLLED_BACK'
            )
              resolve();
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    // Live once an event reaches it: probe events (of no clinic) until one does.
    await expect
      .poll(
        () => {
          t.app.deps.events.pubsub.publish('provisioning', { ...PROBE, at: new Date() });
          return probed;
        },
        { timeout: 10_000, interval: 50 },
      )
      .toBe(true);
    const injected = await t.gql(
      'mutation { injectFault(step: seed_provider) { __typename ... on InjectFaultSuccess { pending } } }',
      undefined,
      await t.superAdmin(),
    );
    expect(injected.body.data).toEqual({
      injectFault: { __typename: 'InjectFaultSuccess', pending: { seed_provider: 1 } },
    });
    await expect(provision('Streamed')).rejects.toBeInstanceOf(RegistrationRefused);
    await done;
    const trail = events.map((event) => `${event.step}:${event.status}`);
    expect(trail).toEqual([
      'central_records:STARTED',
      'central_records:SUCCEEDED',
      'subdomain:STARTED',
      'subdomain:SUCCEEDED',
      'create_database:STARTED',
      'create_database:SUCCEEDED',
      'migrate_database:STARTED',
      'migrate_database:SUCCEEDED',
      'verify_database:STARTED',
      'verify_database:SUCCEEDED',
      'seed_provider:STARTED',
      'seed_provider:FAILED',
      'verify_database:ROLLED_BACK',
      'migrate_database:ROLLED_BACK',
      'create_database:ROLLED_BACK',
      'subdomain:ROLLED_BACK',
      'central_records:ROLLED_BACK',
    ]);
    expect(PROVISIONING_STEP_NAMES).toContain('seed_provider');
  });
});
