/**
 * The event that ends a run says how it ended (`runStatus`), whichever step the plan ends with,
 * and the run record is finished by the time it is published (docs/decisions/057).
 */
import { describe, expect, it } from 'vitest';
import { startTestApp, testLogger } from '../../../../test/harness.js';
import { registerClinic } from '../../../../test/registration-flow.js';
import { transaction } from '../../../db/raw.js';
import { Prisma } from '../../../generated/central/client.js';
import { FaultInjector, InjectedTransientFault } from '../faults.js';
import type { ProvisioningStepName } from '../step-names.js';
import { clinicSubject, type ProvisioningEvent } from './events.js';
import { type EngineDeps, runSteps, type Step } from './runner.js';

describe('the end of a run', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const answer = await registerClinic(t);
  const clinicId = answer.result?.clinic?.id;
  if (!clinicId) throw new Error(JSON.stringify(answer));

  /**
   * Runs `steps`; each published event, and for the one that ends the run the run's recorded
   * status as read from the moment it is published (an earlier event's read could land later).
   */
  async function run(steps: Step<null>[], suspend = false, faults = new FaultInjector(true)) {
    const seen: { event: ProvisioningEvent; recorded: Promise<string | undefined> }[] = [];
    const deps: EngineDeps = {
      prisma,
      logger: testLogger(t.config),
      faults,
      observeStep: () => {},
      publish: (event) => {
        const recorded = event.runStatus
          ? prisma.provisioningRun
              .findUnique({ where: { id: event.runId }, select: { status: true } })
              .then((row) => row?.status)
          : Promise.resolve(undefined);
        seen.push({ event, recorded });
      },
    };
    const result = await runSteps(deps, {
      kind: 'REPAIR',
      subject: clinicSubject(clinicId as string),
      steps,
      state: null,
      ...(suspend ? { suspendOn: () => true } : {}),
    });
    const events = await Promise.all(
      seen.map(async ({ event, recorded }) => ({
        step: event.step,
        status: event.status,
        runStatus: event.runStatus,
        recorded: await recorded,
      })),
    );
    return { result, events };
  }

  const step = (name: ProvisioningStepName, fails = false): Step<null> => ({
    name,
    async run() {
      if (fails) throw new Error(`${name} broke`);
      return { note: `${name} done` };
    },
    async undo() {},
  });

  it('carries SUCCEEDED on the last step, not a commit, once the run is recorded SUCCEEDED', async () => {
    const { result, events } = await run([step('migrate_database'), step('verify_database')]);
    expect(result.ok).toBe(true);
    expect(events).toEqual([
      { step: 'migrate_database', status: 'STARTED', runStatus: null, recorded: undefined },
      { step: 'migrate_database', status: 'SUCCEEDED', runStatus: null, recorded: undefined },
      { step: 'verify_database', status: 'STARTED', runStatus: null, recorded: undefined },
      { step: 'verify_database', status: 'SUCCEEDED', runStatus: 'SUCCEEDED', recorded: 'SUCCEEDED' },
    ]);
  });

  it('carries ROLLED_BACK on the last undo of a failed run', async () => {
    const { events } = await run([step('migrate_database'), step('verify_database', true)]);
    expect(events.slice(-2)).toEqual([
      { step: 'verify_database', status: 'FAILED', runStatus: null, recorded: undefined },
      { step: 'migrate_database', status: 'ROLLED_BACK', runStatus: 'ROLLED_BACK', recorded: 'ROLLED_BACK' },
    ]);
  });

  it('carries FAILED on the failed step of a suspended run', async () => {
    const { result, events } = await run([step('migrate_database'), step('verify_database', true)], true);
    expect(result).toMatchObject({ ok: false, suspended: true });
    expect(events.at(-1)).toEqual({
      step: 'verify_database',
      status: 'FAILED',
      runStatus: 'FAILED',
      recorded: 'FAILED',
    });
  });

  /** A step that writes its record in its own transaction, which then throws `failures` times. */
  const recordingStep = (name: ProvisioningStepName, failures: Error[]): Step<null> => ({
    name,
    async run(_state, context) {
      await transaction(prisma, async (tx) => {
        await tx.execute(
          Prisma.sql`INSERT INTO audit_log (action, target_id) VALUES (${`test.${name}`}::text, ${context.runId}::text)`,
        );
        await context.record(tx);
        const failure = failures.shift();
        if (failure) throw failure;
      });
      return { note: `${name} done` };
    },
    async undo() {},
  });
  const recordsOf = (runId: string) =>
    prisma.provisioningStep.findMany({
      where: { runId },
      orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }],
      select: { name: true, status: true, error: true },
    });

  it("a step's own record rolls back with its transaction: the step is recorded FAILED, never SUCCEEDED", async () => {
    const { result, events } = await run([recordingStep('commit', [new Error('commit broke')])]);
    expect(result).toMatchObject({ ok: false, rolledBack: true });
    expect(await recordsOf(result.runId)).toEqual([
      { name: 'commit', status: 'FAILED', error: 'commit broke' },
    ]);
    expect(await prisma.auditLog.count({ where: { targetId: result.runId } })).toBe(0);
    expect(events.at(-1)).toMatchObject({ step: 'commit', status: 'FAILED' });
    expect(
      await prisma.provisioningRun.findUniqueOrThrow({
        where: { id: result.runId },
        select: { status: true },
      }),
    ).toEqual({ status: 'ROLLED_BACK' });
  });

  it('a step retried after a transient failure writes its own record once, with the try that committed', async () => {
    const { result, events } = await run([
      recordingStep('subdomain', [new InjectedTransientFault('subdomain')]),
      step('verify_database'),
    ]);
    expect(result.ok).toBe(true);
    expect(await recordsOf(result.runId)).toEqual([
      { name: 'subdomain', status: 'SUCCEEDED', error: null },
      { name: 'verify_database', status: 'SUCCEEDED', error: null },
    ]);
    expect(await prisma.auditLog.count({ where: { targetId: result.runId } })).toBe(1);
    expect(events.at(-1)).toMatchObject({ runStatus: 'SUCCEEDED', recorded: 'SUCCEEDED' });
  });

  it('a plan ending with a step that records itself still ends its run', async () => {
    const { result, events } = await run([step('migrate_database'), recordingStep('commit', [])]);
    expect(result.ok).toBe(true);
    expect(events.at(-1)).toEqual({
      step: 'commit',
      status: 'SUCCEEDED',
      runStatus: 'SUCCEEDED',
      recorded: 'SUCCEEDED',
    });
  });
});
