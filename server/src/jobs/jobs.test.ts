/**
 * The release of a dead instance's job locks (docs/decisions/082): two workers' instances on one
 * database, one alive and holding a job, one gone and holding another (the rows a SIGKILLed
 * process leaves: its worker's lock and its `job_workers` row, no connection). Only the dead
 * one's lock is released, and only on the second pass that sees it gone.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { afterFile, createTestDatabase, testConfig, testLogger } from '../../test/harness.js';
import { openDatabases } from '../db/database.js';
import { quoteIdent, withClient } from '../db/sql.js';
import {
  MAX_RELEASES,
  releaseDeadWorkers,
  startWorker,
  type TaskHandlers,
  workerApplicationName,
} from './index.js';

const config = testConfig({ DATABASE_URL: await createTestDatabase('jobs'), LOG_LEVEL: 'fatal' });
const logger = testLogger(config);
const db = await openDatabases(config, logger);
afterAll(() => db.close());
const { prisma } = db;

interface Held {
  id: string;
  locked_by: string | null;
  queue_locked_by: string | null;
}

async function job(key: string): Promise<Held | undefined> {
  const rows = await prisma.$queryRaw<Held[]>`
    SELECT j.id::text, j.locked_by, q.locked_by AS queue_locked_by FROM graphile_worker.jobs j
      LEFT JOIN graphile_worker._private_job_queues q ON q.queue_name = j.queue_name
     WHERE j.key = ${key}`;
  return rows[0];
}

async function until(what: string, probe: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`not after ${ms} ms: ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

describe('releaseDeadWorkers', () => {
  it("releases a gone instance's locks on its second sighting, never a live worker's", async () => {
    // The live instance: a real worker, whose purge job (a named queue) waits until released.
    let finish: () => void = () => {};
    const held = new Promise<void>((done) => {
      finish = done;
    });
    const ran: string[] = [];
    const fail = async () => {
      throw new Error('not part of this test');
    };
    const handlers: TaskHandlers = {
      send_email: async ({ outboxId }) => {
        ran.push(outboxId);
      },
      purge_quarantine: () => held,
      provision_clinic: fail,
      deliver_webhook: fail,
      release_onboarding_names: fail,
    };
    const live = randomUUID();
    const worker = await startWorker({
      connectionString: db.centralUrl,
      instanceId: live,
      logger,
      handlers,
      pollInterval: 100,
      crontab: '',
    });
    afterFile(async () => {
      finish();
      await worker.stop();
    });
    await prisma.$executeRaw`SELECT graphile_worker.add_job('purge_quarantine', '{}'::json,
      job_key => 'live', queue_name => 'purge_quarantine')`;
    await until('the live worker holds its job', async () => (await job('live'))?.locked_by != null);

    // The gone instance: its worker's row and a job (in a queue of its own) locked by it, on its
    // only attempt, as every provision_clinic job is (the registration counts its own attempts).
    const gone = randomUUID();
    const goneWorker = `pool-${randomBytes(9).toString('hex')}`;
    await prisma.$executeRaw`INSERT INTO job_workers (worker_id, instance) VALUES (${goneWorker}, ${gone})`;
    await prisma.$executeRaw`SELECT graphile_worker.add_job('send_email', '{"outboxId":"dead"}'::json,
      job_key => 'dead', queue_name => 'dead-queue', run_at => now() + interval '1 hour', max_attempts => 1)`;
    await prisma.$executeRaw`UPDATE graphile_worker._private_jobs
      SET locked_by = ${goneWorker}, locked_at = now(), attempts = 1, run_at = now() WHERE key = 'dead'`;
    await prisma.$executeRaw`UPDATE graphile_worker._private_job_queues
      SET locked_by = ${goneWorker}, locked_at = now() WHERE queue_name = 'dead-queue'`;

    // First pass: seen gone, nothing released yet.
    expect(await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 })).toBe(0);
    expect(await job('dead')).toMatchObject({ locked_by: goneWorker, queue_locked_by: goneWorker });
    // Second pass: released, job and queue; the live worker's lock is untouched.
    expect(await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 })).toBe(1);
    await until('the released job to run', async () => ran.includes('dead'));
    expect(await job('dead')).toBeUndefined();
    for (let pass = 0; pass < 3; pass++) expect(await releaseDeadWorkers(prisma, logger)).toBe(0);
    const liveJob = await job('live');
    expect(liveJob?.locked_by).not.toBeNull();
    expect(liveJob?.queue_locked_by).toBe(liveJob?.locked_by);
    const rows = await prisma.jobWorker.findMany();
    expect(rows.every((row) => row.instance === live && row.goneSince === null)).toBe(true);
    expect(rows.map((row) => row.workerId)).toEqual([liveJob?.locked_by]);
    finish();
    await until('the live job to end', async () => (await job('live')) === undefined);
  });

  it('waits goneForSeconds after the first sighting, and forgets a sighting once the instance is seen again', async () => {
    const instance = randomUUID();
    const workerId = `worker-${randomBytes(9).toString('hex')}`;
    await prisma.$executeRaw`INSERT INTO job_workers (worker_id, instance) VALUES (${workerId}, ${instance})`;
    await releaseDeadWorkers(prisma, logger);
    expect((await prisma.jobWorker.findUniqueOrThrow({ where: { workerId } })).goneSince).not.toBeNull();
    await releaseDeadWorkers(prisma, logger); // within the 10 s: kept
    expect(await prisma.jobWorker.count({ where: { workerId } })).toBe(1);
    // A connection of the instance's appears (a reconnect): the sighting is forgotten.
    await withClient(
      `${db.centralUrl}${db.centralUrl.includes('?') ? '&' : '?'}application_name=${encodeURIComponent(workerApplicationName(instance))}`,
      async () => {
        await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 });
        expect((await prisma.jobWorker.findUniqueOrThrow({ where: { workerId } })).goneSince).toBeNull();
        await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 });
        expect(await prisma.jobWorker.count({ where: { workerId } })).toBe(1);
      },
    );
  });

  it('fails a job for good, and keeps it, once its worker died while running it MAX_RELEASES times', async () => {
    // A task no worker here knows, so that nothing fetches it between the deaths this test plays.
    await prisma.$executeRaw`SELECT graphile_worker.add_job('poison_test', '{}'::json,
      job_key => 'poison', queue_name => 'poison-queue', run_at => now() + interval '1 hour', max_attempts => 5)`;
    /** One instance that takes the job and dies with it: its row, its lock, the attempt it took. */
    const dieWith = async (key: string) => {
      const workerId = `pool-${randomBytes(9).toString('hex')}`;
      await prisma.$executeRaw`INSERT INTO job_workers (worker_id, instance) VALUES (${workerId}, ${randomUUID()})`;
      await prisma.$executeRaw`UPDATE graphile_worker._private_jobs
        SET locked_by = ${workerId}, locked_at = now(), attempts = attempts + 1 WHERE key = ${key}`;
      await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 }); // seen gone
      expect(await releaseDeadWorkers(prisma, logger, { goneForSeconds: 0 })).toBe(1);
    };
    const poison = async () =>
      (
        await prisma.$queryRaw<
          { attempts: number; max_attempts: number; last_error: string | null; locked_by: string | null }[]
        >`
          SELECT attempts, max_attempts, last_error, locked_by FROM graphile_worker.jobs WHERE key = 'poison'`
      )[0];
    const releases = async () =>
      (await prisma.jobRelease.findMany({ orderBy: { jobId: 'asc' } })).map((row) => [
        row.task,
        row.releases,
      ]);

    for (let death = 1; death < MAX_RELEASES; death++) {
      await dieWith('poison');
      // Released with its attempt given back, to be run again.
      expect(await poison()).toEqual({ attempts: 0, max_attempts: 5, last_error: null, locked_by: null });
      expect(await releases()).toEqual([['poison_test', death]]);
    }
    await dieWith('poison');
    // Kept, unlocked, with no attempt left and the reason: never fetched again.
    expect(await poison()).toMatchObject({ attempts: 5, max_attempts: 5, locked_by: null });
    expect((await poison())?.last_error).toMatch(/died while running it 3 times: not run again/);
    expect(await releases()).toEqual([['poison_test', MAX_RELEASES]]);

    // Once the job is gone (an operator removed it), the next release forgets its count.
    await prisma.$executeRaw`SELECT graphile_worker.remove_job('poison')`;
    await prisma.$executeRaw`SELECT graphile_worker.add_job('poison_test', '{}'::json,
      job_key => 'other', run_at => now() + interval '1 hour')`;
    await dieWith('other');
    expect(await releases()).toEqual([['poison_test', 1]]);
    await prisma.$executeRaw`SELECT graphile_worker.remove_job('other')`;
  });

  it("a role without superuser sees other roles' application_name in pg_stat_activity", async () => {
    const admin = inject('pgAdminUrl');
    const role = `jobs_reader_${randomBytes(6).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    await withClient(admin, (client) =>
      client.query(`CREATE ROLE ${quoteIdent(role)} LOGIN NOSUPERUSER PASSWORD '${password}'`),
    );
    afterFile(() => withClient(admin, (client) => client.query(`DROP ROLE IF EXISTS ${quoteIdent(role)}`)));
    const name = workerApplicationName(randomUUID());
    const url = new URL(admin);
    url.searchParams.set('application_name', name);
    await withClient(url.toString(), async () => {
      const reader = new URL(admin);
      reader.username = role;
      reader.password = password;
      reader.pathname = '/postgres';
      const seen = await withClient(reader.toString(), async (client) => {
        const { rows } = await client.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1',
          [name],
        );
        return rows[0]?.n;
      });
      expect(seen).toBe(1);
    });
  });
});

describe('startWorker', () => {
  /**
   * A database of its own whose job_workers rejects its first `failures` inserts (a trigger), with a
   * due send_email job; the handlers record what ran.
   */
  async function failingRecord(failures: number) {
    const url = await createTestDatabase('jobsgate');
    await withClient(url, async (client) => {
      await client.query('CREATE SEQUENCE record_attempts');
      await client.query(`CREATE FUNCTION fail_record() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF nextval('record_attempts') <= ${failures} THEN RAISE EXCEPTION 'job_workers refused (test)'; END IF;
          RETURN NEW;
        END $$`);
      await client.query(
        'CREATE TRIGGER fail_record BEFORE INSERT ON job_workers FOR EACH ROW EXECUTE FUNCTION fail_record()',
      );
      await client.query(
        `SELECT graphile_worker.add_job('send_email', '{"outboxId":"gate"}'::json, job_key => 'gate')`,
      );
    });
    const ran: string[] = [];
    const fail = async () => {
      throw new Error('not part of this test');
    };
    const handlers: TaskHandlers = {
      send_email: async ({ outboxId }) => {
        ran.push(outboxId);
      },
      purge_quarantine: fail,
      provision_clinic: fail,
      deliver_webhook: fail,
      release_onboarding_names: fail,
    };
    const instanceId = randomUUID();
    const start = () =>
      startWorker({ connectionString: url, instanceId, logger, handlers, pollInterval: 100, crontab: '' });
    const state = () =>
      withClient(url, async (client) => ({
        job: (
          await client.query<{ locked_by: string | null; attempts: number }>(
            "SELECT locked_by, attempts FROM graphile_worker.jobs WHERE key = 'gate'",
          )
        ).rows[0],
        pools: Number(
          (await client.query<{ n: string }>('SELECT count(*) AS n FROM job_workers')).rows[0]?.n,
        ),
        connections: Number(
          (
            await client.query<{ n: string }>(
              'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
              [workerApplicationName(instanceId)],
            )
          ).rows[0]?.n,
        ),
      }));
    return { start, state, ran };
  }

  it('fails, its workers having fetched nothing, when its pool cannot be recorded', async () => {
    const { start, state, ran } = await failingRecord(Number.MAX_SAFE_INTEGER);
    await expect(start()).rejects.toThrow('job_workers refused (test)');
    // Nothing fetched the job meanwhile, and the pool's connections are closed.
    expect(await state()).toEqual({ job: { locked_by: null, attempts: 0 }, pools: 0, connections: 0 });
    expect(ran).toEqual([]);
  });

  it('records its pool on a later attempt when the first fails, then runs jobs', async () => {
    const { start, state, ran } = await failingRecord(1);
    const worker = await start();
    afterFile(() => worker.stop());
    await until('the job to run', async () => (await state()).job === undefined);
    expect(ran).toEqual(['gate']);
    expect((await state()).pools).toBe(1);
  });
});
