/**
 * Fleet rollouts (docs/decisions/047) on real PostgreSQL: clinics registered over GraphQL by a
 * deployment at the repository's clinic schema, then upgraded by a deployment with a clinic
 * migration more (CLINIC_MIGRATIONS_DIR): canary and pause, resume, a failing clinic, the failure
 * threshold, abort, a busy clinic.
 */

import pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { clinicMigrationsWith } from '../../../test/clinic-migrations.js';
import { afterFile, startTestApp, type TestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { databaseUrl, withClient } from '../../db/sql.js';

const ROLLOUT = `id status pauseReason targetVersion
  counts { total done failed remaining running }
  clinics { clinicId position canary state attempts error dbStatus runId }`;
const START = `mutation ($input: StartRolloutInput) { startRollout(input: $input) {
  __typename ... on Rollout { ${ROLLOUT} } ... on Error { code message }
  ... on ValidationError { fields { path message } } } }`;
const act = (name: string) => `mutation ($id: ID!) { ${name}(id: $id) {
  __typename ... on Rollout { ${ROLLOUT} } ... on Error { code message } } }`;

interface Rollout {
  __typename: string;
  id: string;
  status: string;
  pauseReason: string | null;
  targetVersion: string;
  counts: { total: number; done: number; failed: number; remaining: number; running: number };
  clinics: {
    clinicId: string;
    position: number;
    canary: boolean;
    state: string;
    attempts: number;
    error: string | null;
    dbStatus: string | null;
    runId: string | null;
  }[];
  code?: string;
  message?: string;
  fields?: { path: string[] }[];
}

const quiet = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };

/** The deployment that registers the clinics, at the repository's clinic schema. */
const before = await startTestApp(quiet);
const centralUrl = before.config.databaseUrl as string;
const serverUrl = before.app.deps.db.clinicServers[0]?.url as string;

/** A deployment of the same central database with `added` clinic migrations after the repository's. */
async function deployment(
  added: Record<string, string>,
  env: Record<string, string> = {},
): Promise<TestApp & { headers: Record<string, string> }> {
  const t = await startTestApp(
    {
      ...quiet,
      ...env,
      DATABASE_URL: centralUrl,
      CLINIC_MIGRATIONS_DIR: clinicMigrationsWith(added),
      CLINIC_ROLLOUT_AT_START: 'off',
    },
    { rolloutTuning: { lockTimeoutMs: 200, busyRetryMs: 200, busyAttempts: 50 } },
  );
  return Object.assign(t, { headers: await t.superAdmin() });
}

async function run(
  t: TestApp,
  query: string,
  variables: Record<string, unknown>,
  headers: Record<string, string>,
) {
  const { body } = await t.gql<Record<string, Rollout>>(query, variables, headers);
  const result = Object.values(body.data ?? {})[0];
  if (!result) throw new Error(JSON.stringify(body));
  return result;
}

async function rollout(t: TestApp, id: string, headers: Record<string, string>): Promise<Rollout> {
  const { body } = await t.gql<{ rollout: Rollout }>(
    `query ($id: ID!) { rollout(id: $id) { ${ROLLOUT} } }`,
    { id },
    headers,
  );
  if (!body.data?.rollout) throw new Error(JSON.stringify(body));
  return body.data.rollout;
}

/** Waits for the rollout to reach a state (polling its record), and returns it. */
function until(
  t: TestApp & { headers: Record<string, string> },
  id: string,
  done: (rollout: Rollout) => boolean,
): Promise<Rollout> {
  return vi.waitFor(
    async () => {
      const current = await rollout(t, id, t.headers);
      if (!done(current)) throw new Error(`not yet: ${JSON.stringify(current)}`);
      return current;
    },
    { timeout: 30_000, interval: 100 },
  );
}

async function clinicDatabase(clinicId: string): Promise<string> {
  const clinic = await before.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
  return databaseUrl(serverUrl, clinic.databaseName);
}

async function appliedIn(clinicId: string, migration: string): Promise<number> {
  return withClient(await clinicDatabase(clinicId), async (client) =>
    Number(
      (
        await client.query('SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE migration_name = $1', [
          migration,
        ])
      ).rows[0].n,
    ),
  );
}

const M1 = '20991201000000_invoices';
const M2 = '20991202000000_refunds';
const M3 = '20991203000000_credit_notes';
const M4 = '20991204000000_provider_note';
const M5 = '20991205000000_slow';
const SQL = {
  [M1]: 'CREATE TABLE "invoices" ("id" UUID NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY, "amount_cents" INTEGER NOT NULL);',
  [M2]: 'CREATE TABLE "refunds" ("id" UUID NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY);',
  [M3]: 'CREATE TABLE "credit_notes" ("id" UUID NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY);',
  // Needs an ACCESS EXCLUSIVE lock on a table clinics use all the time.
  [M4]: 'ALTER TABLE "healthcare_providers" ADD COLUMN "note" TEXT;',
  // The sleep keeps an upgrade in flight while the test pauses and resumes; nothing is timed.
  [M5]: 'SELECT pg_sleep(1);\nCREATE TABLE "slow" ("id" INT);',
};

describe('fleet rollouts', async () => {
  const clinics: string[] = [];
  for (let i = 0; i < 6; i++) {
    const answer = await registerClinic(before);
    if (answer.result?.status !== 'READY') throw new Error(JSON.stringify(answer));
    clinics.push(answer.result.clinic?.id as string);
  }

  it('upgrades the canary, pauses for a look, and on resume the rest: each an UPGRADE run, audited, streamed', async () => {
    const t = await deployment({ [M1]: SQL[M1] });
    afterFile(() => t.app.stop());
    const { prisma } = t.app.deps.db;
    const version = t.app.deps.rollouts.targetVersion;

    // Out of range: VALIDATION_FAILED, naming the inputs.
    const invalid = await run(t, START, { input: { canary: -1, concurrency: 0 } }, t.headers);
    expect(invalid.__typename).toBe('ValidationError');
    expect(invalid.fields?.map((field) => field.path.join('.'))).toEqual([
      'input.canary',
      'input.concurrency',
    ]);
    expect(await prisma.rollout.count()).toBe(0);

    const started = await run(t, START, { input: { canary: 1, concurrency: 2 } }, t.headers);
    expect(started).toMatchObject({ __typename: 'Rollout', targetVersion: version, counts: { total: 6 } });
    expect(started.clinics.map((clinic) => clinic.clinicId)).toEqual(clinics);
    expect(started.clinics.map((clinic) => clinic.canary)).toEqual([true, false, false, false, false, false]);

    const paused = await until(t, started.id, (r) => r.status === 'PAUSED');
    expect(paused.pauseReason).toMatch(/canaries are upgraded and HEALTHY/);
    expect(paused.counts).toMatchObject({ done: 1, failed: 0, remaining: 5 });
    expect(await appliedIn(clinics[0] as string, M1)).toBe(1);
    expect(await appliedIn(clinics[1] as string, M1)).toBe(0);
    expect((await t.app.deps.provisioning.checkClinic(clinics[0] as string)).dbStatus).toBe('HEALTHY');
    expect((await t.app.deps.provisioning.checkClinic(clinics[1] as string)).dbStatus).toBe('DEGRADED');

    // One rollout at a time, paused or not.
    const second = await run(t, START, { input: {} }, t.headers);
    expect(second).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });
    const missing = await run(
      t,
      act('pauseRollout'),
      { id: '00000000-0000-4000-8000-000000000000' },
      t.headers,
    );
    expect(missing).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
    expect(await run(t, act('pauseRollout'), { id: started.id }, t.headers)).toMatchObject({
      code: 'CONFLICT',
    });

    // Watch it live from here: once an event of this rollout arrives, the subscription is attached.
    const events: Rollout[] = [];
    const ws = t.ws({ connectionParams: { authorization: t.headers.authorization } });
    const stream = (async () => {
      for await (const next of ws.iterate<{ rolloutProgress: Rollout }>({
        query: `subscription ($id: ID) { rolloutProgress(id: $id) { ${ROLLOUT} } }`,
        variables: { id: started.id },
      })) {
        if (next.data) events.push(next.data.rolloutProgress);
        if (next.data?.rolloutProgress.status === 'COMPLETED') break;
      }
    })();
    await vi.waitFor(() => {
      t.app.deps.events.pubsub.publish('rollouts', { rolloutId: started.id });
      if (events.length === 0) throw new Error('not subscribed yet');
    });
    expect(events[0]).toMatchObject({ status: 'PAUSED', counts: { done: 1 } });

    const resumed = await run(t, act('resumeRollout'), { id: started.id }, t.headers);
    expect(resumed.status).toBe('RUNNING');
    const completed = await until(t, started.id, (r) => r.status === 'COMPLETED');
    expect(completed.counts).toEqual({ total: 6, done: 6, failed: 0, remaining: 0, running: 0 });
    for (const id of clinics) {
      expect(await appliedIn(id, M1)).toBe(1);
      expect(await t.app.deps.provisioning.checkClinic(id)).toMatchObject({
        dbStatus: 'HEALTHY',
        schemaVersion: version,
      });
    }

    // Each clinic's upgrade is an UPGRADE run with its steps, audited with the operator who started it.
    const runs = await prisma.provisioningRun.findMany({
      where: { kind: 'UPGRADE', id: { in: completed.clinics.map((clinic) => clinic.runId as string) } },
      include: { steps: true },
    });
    expect(runs).toHaveLength(6);
    for (const upgrade of runs) {
      expect(upgrade.status).toBe('SUCCEEDED');
      expect(upgrade.steps.map((step) => [step.name, step.status]).sort()).toEqual([
        ['migrate_database', 'SUCCEEDED'],
        ['verify_database', 'SUCCEEDED'],
      ]);
    }
    const operator = await prisma.user.findUniqueOrThrow({ where: { email: t.config.adminEmail } });
    const audits = await prisma.auditLog.findMany({ where: { action: 'clinic.upgrade' } });
    expect(audits.map((entry) => entry.clinicId).sort()).toEqual([...clinics].sort());
    expect(audits.every((entry) => entry.actorId === operator.id)).toBe(true);
    expect(
      (await prisma.auditLog.findMany({ where: { targetId: started.id }, orderBy: { id: 'asc' } })).map(
        (e) => e.action,
      ),
    ).toEqual(['rollout.start', 'rollout.pause', 'rollout.resume']);

    // The stream showed it live: the canary alone upgraded, the pause, then the rest one by one.
    await stream;
    expect(events.some((e) => e.status === 'RUNNING' && e.counts.done > 1 && e.counts.remaining > 0)).toBe(
      true,
    );
    expect(events.at(-1)?.counts.done).toBe(6);
    await t.app.stop();
  }, 120_000);

  it('a clinic whose upgrade fails stays on its version, DEGRADED with the error; the others go on (canaries HEALTHY: no pause)', async () => {
    const t = await deployment({ [M1]: SQL[M1], [M2]: SQL[M2] });
    afterFile(() => t.app.stop());
    const broken = clinics[2] as string;
    // Its database already has the table the migration creates: the migration fails there.
    await withClient(await clinicDatabase(broken), (client) =>
      client.query('CREATE TABLE "refunds" (x INT)'),
    );
    const m1Version = (await t.app.deps.db.prisma.clinic.findUniqueOrThrow({ where: { id: broken } }))
      .schemaVersion;

    const started = await run(
      t,
      START,
      { input: { canary: 1, continueWhenHealthy: true, concurrency: 1, failureThreshold: 1 } },
      t.headers,
    );
    const completed = await until(t, started.id, (r) => r.status === 'COMPLETED');
    expect(completed.counts).toEqual({ total: 6, done: 5, failed: 1, remaining: 0, running: 0 });
    const failed = completed.clinics.find((clinic) => clinic.clinicId === broken);
    expect(failed).toMatchObject({ state: 'FAILED', dbStatus: 'DEGRADED', attempts: 1 });
    expect(failed?.error).toMatch(/"refunds" already exists/);
    // Its upgrade was one transaction: nothing of it applied, the clinic is on its old version.
    expect(await appliedIn(broken, M2)).toBe(0);
    const health = await t.app.deps.provisioning.checkClinic(broken);
    expect(health).toMatchObject({ dbStatus: 'DEGRADED', schemaVersion: m1Version });
    expect(health.errors.join(' ')).toMatch(/schema version/);
    for (const id of clinics.filter((clinic) => clinic !== broken)) expect(await appliedIn(id, M2)).toBe(1);
    const run_ = await t.app.deps.db.prisma.provisioningRun.findUniqueOrThrow({
      where: { id: failed?.runId as string },
    });
    expect(run_).toMatchObject({ kind: 'UPGRADE', status: 'ROLLED_BACK' });
    expect(run_.error).toMatch(/migrate_database: .*already exists/);
    await t.app.stop();
  }, 120_000);

  it('pauses itself when failures pass the threshold; abort leaves the clinics not reached on their version', async () => {
    const t = await deployment({ [M1]: SQL[M1], [M2]: SQL[M2], [M3]: SQL[M3] });
    afterFile(() => t.app.stop());
    // clinics[2] still fails at M2; clinics[3] will fail at M3.
    await withClient(await clinicDatabase(clinics[3] as string), (client) =>
      client.query('CREATE TABLE "credit_notes" (x INT)'),
    );
    const started = await run(
      t,
      START,
      { input: { canary: 0, concurrency: 1, failureThreshold: 1 } },
      t.headers,
    );
    const paused = await until(t, started.id, (r) => r.status === 'PAUSED');
    expect(paused.pauseReason).toBe('2 clinics failed, more than the threshold of 1');
    expect(paused.clinics.map((clinic) => clinic.state)).toEqual([
      'UPGRADED',
      'UPGRADED',
      'FAILED',
      'FAILED',
      'PENDING',
      'PENDING',
    ]);

    const aborted = await run(t, act('abortRollout'), { id: started.id }, t.headers);
    expect(aborted).toMatchObject({ status: 'ABORTED', counts: { done: 2, failed: 2, remaining: 2 } });
    for (const id of clinics.slice(4)) expect(await appliedIn(id, M3)).toBe(0);
    expect(await run(t, act('resumeRollout'), { id: started.id }, t.headers)).toMatchObject({
      code: 'CONFLICT',
    });
    expect(await run(t, act('abortRollout'), { id: started.id }, t.headers)).toMatchObject({
      code: 'CONFLICT',
    });
    await t.app.stop();
  }, 120_000);

  it('a busy clinic (a lock held by one of its sessions) is retried later instead of blocking the rollout', async () => {
    const t = await deployment({ [M1]: SQL[M1], [M2]: SQL[M2], [M3]: SQL[M3], [M4]: SQL[M4] });
    afterFile(() => t.app.stop());
    const busy = clinics[4] as string;
    const session = new pg.Client({ connectionString: await clinicDatabase(busy) });
    await session.connect();
    await session.query('BEGIN');
    await session.query('SELECT count(*) FROM healthcare_providers');
    try {
      const started = await run(
        t,
        START,
        { input: { canary: 0, concurrency: 2, failureThreshold: 10 } },
        t.headers,
      );
      // The others are done while the busy one waits for its next attempt, not for the lock.
      const waiting = await until(t, started.id, (r) =>
        r.clinics.every((clinic) =>
          clinic.clinicId === busy
            ? clinic.attempts >= 2 && clinic.state === 'PENDING'
            : clinic.state !== 'PENDING' && clinic.state !== 'RUNNING',
        ),
      );
      expect(waiting.status).toBe('RUNNING');
      expect(waiting.clinics.find((clinic) => clinic.clinicId === busy)?.error).toMatch(
        /^busy, tried again later: .*lock timeout/,
      );
      expect(waiting.counts).toMatchObject({ done: 3, failed: 2, remaining: 1 });
      const busyRun = await t.app.deps.db.prisma.provisioningRun.findFirstOrThrow({
        where: { clinicId: busy, kind: 'UPGRADE', attempt: 1 },
        orderBy: { startedAt: 'desc' },
      });
      expect(busyRun.status).toBe('FAILED');
      await session.query('COMMIT');

      const completed = await until(t, started.id, (r) => r.status === 'COMPLETED');
      expect(completed.clinics.find((clinic) => clinic.clinicId === busy)).toMatchObject({
        state: 'UPGRADED',
      });
      expect(await appliedIn(busy, M4)).toBe(1);
    } finally {
      await session.end();
    }
    await t.app.stop();
  }, 120_000);

  it('a rollout resumed while the upgrades in flight at its pause finish goes on once they are done', async () => {
    // No look for abandoned rollouts within the test (half a lease): the resume alone drives it.
    const t = await deployment({ ...SQL, [M5]: SQL[M5] }, { PROVISIONING_LEASE_SECONDS: '3600' });
    afterFile(() => t.app.stop());
    const started = await run(
      t,
      START,
      { input: { canary: 0, concurrency: 2, failureThreshold: 10 } },
      t.headers,
    );
    await until(t, started.id, (r) => r.counts.running > 0);
    expect(await run(t, act('pauseRollout'), { id: started.id }, t.headers)).toMatchObject({
      status: 'PAUSED',
    });
    const resumed = await run(t, act('resumeRollout'), { id: started.id }, t.headers);
    expect(resumed).toMatchObject({ status: 'RUNNING' });
    expect(resumed.counts.done).toBeLessThan(4);
    const completed = await until(t, started.id, (r) => r.status === 'COMPLETED');
    expect(completed.counts).toMatchObject({ done: 4, failed: 2, remaining: 0 });
    await t.app.stop();
  }, 120_000);
});
