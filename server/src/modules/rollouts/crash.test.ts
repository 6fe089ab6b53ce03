/**
 * A rollout survives its driver's crash: the real server, deployed with a new clinic migration,
 * starts a rollout by itself (CLINIC_ROLLOUT_AT_START=auto) and is SIGKILLed in the middle of a
 * clinic's upgrade; the next instance takes the rollout over once the dead one's lease lapses and
 * finishes it where it was, each clinic upgraded once.
 */
import { describe, expect, it, vi } from 'vitest';
import { clinicMigrationsWith } from '../../../test/clinic-migrations.js';
import { startTestApp, TEST_SECRETS } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { startServerProcess } from '../../../test/server-process.js';
import { databaseUrl, withClient } from '../../db/sql.js';

const quiet = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };
const MIGRATION = '20991201000000_invoices';

describe('a rollout whose driver is killed', async () => {
  const before = await startTestApp(quiet);
  const centralUrl = before.config.databaseUrl as string;
  const { prisma } = before.app.deps.db;
  const clinics: string[] = [];
  for (let i = 0; i < 4; i++) {
    const answer = await registerClinic(before);
    if (answer.result?.status !== 'READY') throw new Error(JSON.stringify(answer));
    clinics.push(answer.result.clinic?.id as string);
  }
  // The sleep only widens the window in which a clinic's upgrade is under way (the kill waits
  // for that state); nothing is timed.
  const dir = clinicMigrationsWith({
    [MIGRATION]:
      'SELECT pg_sleep(0.5);\nCREATE TABLE "invoices" ("id" UUID NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY);',
  });
  const deployment = {
    DATABASE_URL: centralUrl,
    CLINIC_MIGRATIONS_DIR: dir,
    CLINIC_ROLLOUT_AT_START: 'auto',
    PROVISIONING_LEASE_SECONDS: '2',
  };

  it('is taken over by the next instance and finishes where it was', async () => {
    const first = await startServerProcess({
      ...TEST_SECRETS,
      ...deployment,
      ONRAMP_ENV: 'test',
      LOG_LEVEL: 'error',
      CLINIC_HEALTH_CONCURRENCY: '1',
    });
    // Killed while a clinic is being upgraded, after at least one is done.
    const atKill = await vi.waitFor(
      async () => {
        const entries = await prisma.rolloutClinic.findMany({ orderBy: { position: 'asc' } });
        const states = entries.map((entry) => entry.state);
        if (!(states.includes('UPGRADED') && states.includes('RUNNING') && states.includes('PENDING')))
          throw new Error(`not yet: ${states.join(',')}`);
        first.child.kill('SIGKILL');
        return entries;
      },
      { timeout: 60_000, interval: 20 },
    );
    await first.stop();
    const killedIn = atKill.find((entry) => entry.state === 'RUNNING')?.clinicId as string;
    const rollout = await prisma.rollout.findFirstOrThrow();
    expect(rollout).toMatchObject({ status: 'RUNNING', startedBy: null, canary: 0 });

    // The next instance: its own start-time rollout is refused (one is under way); it takes that one over.
    const next = await startTestApp({ ...quiet, ...deployment });
    const done = await vi.waitFor(
      async () => {
        const current = await next.app.deps.rollouts.get(rollout.id);
        if (current.status !== 'COMPLETED') throw new Error(`not yet: ${current.status}`);
        return current;
      },
      { timeout: 60_000, interval: 100 },
    );
    expect(await prisma.rollout.count()).toBe(1);
    expect(done.counts).toEqual({ total: 4, done: 4, failed: 0, remaining: 0, running: 0 });
    // Those done before the kill were not upgraded again; the one cut off was tried again.
    for (const entry of done.clinics) {
      const earlier = atKill.find((killed) => killed.clinicId === entry.clinicId);
      expect(entry.attempts).toBe(entry.clinicId === killedIn ? 2 : 1);
      if (earlier?.state === 'UPGRADED') expect(entry.runId).toBe(earlier.runId);
    }
    const server = next.app.deps.db.clinicServers[0]?.url as string;
    for (const id of clinics) {
      const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id } });
      const applied = await withClient(databaseUrl(server, clinic.databaseName), async (client) =>
        Number(
          (
            await client.query(
              'SELECT count(*)::int AS n FROM "_prisma_migrations" WHERE migration_name = $1',
              [MIGRATION],
            )
          ).rows[0].n,
        ),
      );
      expect(applied).toBe(1);
      expect((await next.app.deps.provisioning.checkClinic(id)).dbStatus).toBe('HEALTHY');
    }
    // The UPGRADE run the kill cut off is settled by the reconciler (FAILED), not left RUNNING.
    await vi.waitFor(
      async () => {
        const running = await prisma.provisioningRun.count({ where: { kind: 'UPGRADE', status: 'RUNNING' } });
        if (running > 0) throw new Error(`${running} still RUNNING`);
      },
      { timeout: 30_000, interval: 100 },
    );
  }, 180_000);
});
