import { describe, expect, inject, it } from 'vitest';
import { stallingLink, startTestApp } from '../../../test/harness.js';
import { createClinic, RegistrationRefused } from '../../../test/registration-flow.js';

// The clinic server behind a proxy that can leave a connect unanswered: what a server too loaded
// to start a backend within the clinic session's connect timeout looks like to Onramp (the
// sustained fill's verify_database failures, issue 16).
const link = await stallingLink(inject('pgAdminUrl'));

describe('a clinic server too busy to answer a connect in time', async () => {
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: link.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db } = t.app.deps;

  /** The app's JSON log lines with this message, for one run. */
  const logged = (msg: string, runId: string) =>
    t
      .logs()
      .split('\n')
      .filter((line) => line.includes(`"msg":"${msg}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.runId === runId);

  it("retries the clinic role's timed-out connect within verify_database: the registration succeeds", async () => {
    // The clinic session is the clinic role's first connection (no pool, no health sweep).
    link.stall(/^clinic_role_/, 1);
    const { clinicId, runId } = await createClinic(t, { clinicName: 'Busy server', country: 'FR' });
    expect(link.stalled).toBe(1);
    expect(await db.prisma.provisioningRun.findUnique({ where: { id: runId } })).toMatchObject({
      status: 'SUCCEEDED',
    });
    expect(
      await db.prisma.provisioningStep.findMany({ where: { runId, name: 'verify_database' } }),
    ).toMatchObject([{ status: 'SUCCEEDED', error: null }]);
    expect(logged('provisioning step failed transiently; trying again', runId)).toEqual([
      expect.objectContaining({
        step: 'verify_database',
        error: 'the clinic role cannot connect: timeout expired',
        retry: 1,
      }),
    ]);
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
  });

  it('gives up after the bounded retries when the server never answers, and logs why', async () => {
    // The first try and every retry (engine/transient.ts: STEP_RETRIES = 3).
    const before = link.stalled;
    link.stall(/^clinic_role_/, 4);
    const error = await createClinic(t, { clinicName: 'Dead server', country: 'FR' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RegistrationRefused);
    expect((error as RegistrationRefused).step).toBe('verify_database');
    expect(link.stalled - before).toBe(4);
    const runId = (error as RegistrationRefused).runId as string;
    expect(
      await db.prisma.provisioningStep.findFirst({ where: { runId, name: 'verify_database' } }),
    ).toMatchObject({ status: 'FAILED', error: 'the clinic role cannot connect: timeout expired' });
    expect(logged('provisioning step failed transiently; trying again', runId)).toHaveLength(3);
    expect(logged('provisioning step failed', runId)).toEqual([
      expect.objectContaining({
        step: 'verify_database',
        error: 'the clinic role cannot connect: timeout expired',
      }),
    ]);
    expect(await db.prisma.clinic.count({ where: { name: 'Dead server' } })).toBe(0);
  });
});
