/**
 * A step's central transaction on one pg client of the pool (db/raw.ts `transaction`, decision
 * 074): all or nothing with what its hook adds, the step's record with it, and the connection
 * back in the pool whichever way it ends.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp, testLogger } from '../../../../test/harness.js';
import { poolOf, transaction } from '../../../db/raw.js';
import { Prisma } from '../../../generated/central/client.js';
import { FaultInjector } from '../faults.js';
import { clinicSubject } from './events.js';
import { type EngineDeps, runSteps } from './runner.js';
import type { ProvisionState } from './state.js';
import { centralRecordsStep } from './steps/central-records.js';
import type { TransactionHook } from './steps/hooks.js';

describe('a step transaction beside the engine', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const pool = poolOf(prisma);
  if (!pool) throw new Error('the central client has no pool recorded');
  const deps: EngineDeps = {
    prisma,
    logger: testLogger(t.config),
    faults: new FaultInjector(true),
    observeStep: () => {},
    publish: () => {},
  };

  let n = 0;
  async function centralRecords(hook: TransactionHook<ProvisionState>) {
    n += 1;
    const state = await t.app.deps.provisioning.newState({ clinicName: `Step Tx ${n}`, country: 'FR' });
    const result = await runSteps(deps, {
      kind: 'REGISTER',
      subject: clinicSubject(state.clinicId, state.clinicName),
      steps: [centralRecordsStep(deps, hook)],
      state,
    });
    return { state, result };
  }

  it('rolls the company, the clinic, the hook’s rows and the step’s record back when the hook throws mid-way', async () => {
    const companies = await prisma.company.count();
    const { state, result } = await centralRecords({
      async run(tx, s) {
        await tx.execute(
          Prisma.sql`INSERT INTO audit_log (action, clinic_id) VALUES ('test.hook', ${s.clinicId}::uuid)`,
        );
        throw new Error('hook broke after its first write');
      },
    });
    expect(result).toMatchObject({ ok: false, failedStep: 'central_records', rolledBack: true });
    expect(await prisma.clinic.count({ where: { id: state.clinicId } })).toBe(0);
    expect(await prisma.company.count()).toBe(companies);
    expect(await prisma.auditLog.count({ where: { clinicId: state.clinicId } })).toBe(0);
    expect(
      await prisma.provisioningStep.findMany({ where: { runId: result.runId }, select: { status: true } }),
    ).toEqual([{ status: 'FAILED' }]);
  });

  it('gives back a unique violation of the hook as it is, after rolling the company and clinic back', async () => {
    const companies = await prisma.company.count();
    const taken = `step-tx-${Date.now()}@example.com`;
    await prisma.user.create({ data: { email: taken, firstName: 'A', lastName: 'B', role: 'STAFF' } });
    const { state, result } = await centralRecords({
      async run(tx) {
        await tx.execute(
          Prisma.sql`INSERT INTO users (email, first_name, last_name, role) VALUES (${taken}::text, 'C', 'D', 'STAFF')`,
        );
      },
    });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toMatchObject({ code: '23505', constraint: 'users_email_key' });
    expect(await prisma.clinic.count({ where: { id: state.clinicId } })).toBe(0);
    expect(await prisma.company.count()).toBe(companies);
    expect(await prisma.user.count({ where: { email: taken } })).toBe(1);
  });

  it('hands its connection back to the pool after a commit, a throw and a failed statement', async () => {
    const idle = async () => {
      // Other work of the app may hold a connection for a moment: wait for the pool to settle.
      for (let i = 0; i < 100 && pool.idleCount < pool.totalCount; i++)
        await new Promise((done) => setTimeout(done, 10));
      return pool.totalCount - pool.idleCount;
    };
    const held = await idle();
    expect(await transaction(prisma, (tx) => tx.query<{ one: number }>(Prisma.sql`SELECT 1 AS one`))).toEqual(
      [{ one: 1 }],
    );
    await expect(
      transaction(prisma, async () => {
        throw new Error('work broke');
      }),
    ).rejects.toThrow('work broke');
    await expect(transaction(prisma, (tx) => tx.execute(Prisma.sql`SELECT 1/0`))).rejects.toMatchObject({
      code: '22012',
    });
    expect(await idle()).toBe(held);
    // And the next transactions start clean: no aborted transaction was left on a connection.
    for (let i = 0; i < 3; i++)
      expect(await transaction(prisma, (tx) => tx.execute(Prisma.sql`SELECT 1`))).toBe(1);
  });
});
