import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { startExtraPostgres, startTestApp } from '../../../test/harness.js';
import { createClinic, RegistrationRefused } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';

// A small server of its own: these tests exhaust its connections.
const small = await startExtraPostgres({ maxConnections: 12 });

async function leftovers() {
  return withClient(small.url, async (client) => ({
    databases: (await client.query("SELECT datname FROM pg_database WHERE datname LIKE 'clinic\\_%'")).rows
      .length,
    roles: (await client.query("SELECT rolname FROM pg_roles WHERE rolname LIKE 'clinic\\_role\\_%'")).rows
      .length,
  }));
}

describe('server faults during provisioning', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: small.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db } = t.app.deps;
  const provision = (clinicName: string) => createClinic(t, { clinicName, country: 'FR' });

  /** The app's JSON log lines with this message. */
  const logged = (msg: string) =>
    t
      .logs()
      .split('\n')
      .filter((line) => line.includes(`"msg":"${msg}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('fails cleanly when the clinic server has no connection left, and works again afterwards', async () => {
    const hogs: pg.Client[] = [];
    let refusal = '';
    try {
      while (!refusal) {
        const client = new pg.Client({ connectionString: small.url });
        client.on('error', () => {});
        try {
          await client.connect();
          hogs.push(client);
        } catch (error) {
          refusal = (error as Error).message;
        }
        if (hogs.length > 20) throw new Error('the server never refused a connection');
      }
      expect(refusal).toMatch(/too many clients|connection slots/);
      const error = await provision('Starved').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RegistrationRefused);
      expect((error as RegistrationRefused).step).toBe('create_database');
    } finally {
      await Promise.all(hogs.map((client) => client.end()));
    }
    expect(await db.prisma.clinic.count({ where: { name: 'Starved' } })).toBe(0);
    expect(await leftovers()).toEqual({ databases: 0, roles: 0 });
    const { clinicId } = await provision('Fed');
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
  });

  it('fails cleanly when its database connection is killed in the middle of a step', async () => {
    const before = await leftovers();
    // Hold a lock so central_records blocks, then kill the blocked backend.
    const locker = new pg.Client({ connectionString: db.centralUrl });
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE companies IN ACCESS EXCLUSIVE MODE');
    const running = provision('Killed').catch((e: unknown) => e);
    try {
      await withClient(db.centralUrl, async (client) => {
        for (let i = 0; i < 200; i++) {
          const { rows } = await client.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'
                AND query ILIKE '%INSERT INTO%companies%' AND pid <> pg_backend_pid()`,
          );
          if (rows[0]) {
            await client.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
        throw new Error('central_records never blocked on the lock');
      });
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    const error = await running;
    expect(error).toBeInstanceOf(RegistrationRefused);
    expect((error as RegistrationRefused).step).toBe('central_records');
    expect(await db.prisma.clinic.count({ where: { name: 'Killed' } })).toBe(0);
    expect(await leftovers()).toEqual(before);
  });

  it('retries a step failing transiently (a server starting up) within the step: the run succeeds', async () => {
    provisioning.faults.injectTransient('create_database', 1);
    const { clinicId, runId } = await provision('Transient once');
    expect(await db.prisma.provisioningRun.findUnique({ where: { id: runId } })).toMatchObject({
      status: 'SUCCEEDED',
    });
    expect(
      await db.prisma.provisioningStep.findMany({ where: { runId, name: 'create_database' } }),
    ).toMatchObject([{ status: 'SUCCEEDED', error: null }]);
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
    expect(
      logged('provisioning step failed transiently; trying again').filter((line) => line.runId === runId),
    ).toEqual([
      expect.objectContaining({
        runId,
        kind: 'REGISTER',
        subject: clinicId,
        step: 'create_database',
        error: 'injected fault in step create_database: the database system is starting up',
        errorCode: '57P03',
        retry: 1,
      }),
    ]);
  });

  it('gives up after a bounded number of retries, logging the cause of the failed step', async () => {
    const before = await leftovers();
    provisioning.faults.injectTransient('migrate_database', 4);
    const error = await provision('Transient for ever').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistrationRefused);
    expect((error as RegistrationRefused).step).toBe('migrate_database');
    const { runId } = error as RegistrationRefused;
    const retries = logged('provisioning step failed transiently; trying again').filter(
      (line) => line.runId === runId,
    );
    expect(retries.map((line) => line.retry)).toEqual([1, 2, 3]);
    expect(logged('provisioning step failed').filter((line) => line.runId === runId)).toEqual([
      expect.objectContaining({
        kind: 'REGISTER',
        step: 'migrate_database',
        error: 'injected fault in step migrate_database: the database system is starting up',
      }),
    ]);
    expect(await leftovers()).toEqual(before);
  });
});
