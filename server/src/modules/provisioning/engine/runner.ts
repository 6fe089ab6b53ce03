/**
 * The engine's runner: runs a plan's steps in order, records the run and every step transition
 * in the central database, publishes a ProvisioningEvent for each, and on failure undoes the
 * finished steps in reverse (ROLLED_BACK). docs/decisions/005 explains why a saga and not one
 * transaction: a database, a role and DNS records cannot join a PostgreSQL transaction;
 * docs/decisions/043 why every lifecycle operation of a clinic is such a run.
 */
import type { CentralPrisma } from '../../../db/database.js';
import type { ProvisioningRunKind } from '../../../generated/central/enums.js';
import type { Logger } from '../../../logger.js';
import type { FaultInjector } from '../faults.js';
import type { ProvisioningStepName } from '../step-names.js';
import {
  type ProvisioningEvent,
  type ProvisioningEventStatus,
  type RunSubject,
  subjectColumns,
} from './events.js';
import { isTransientStepError, STEP_RETRIES, STEP_RETRY_BASE_MS } from './transient.js';

export interface StepResult {
  /** The step had nothing to do (e.g. DNS not configured); recorded as SKIPPED. */
  skipped?: string;
  /** What the step did, when worth telling (the event's message). */
  note?: string;
}

/** What a step knows of the run it belongs to. */
export interface StepContext {
  runId: string;
}

export interface Step<S> {
  name: ProvisioningStepName;
  run(state: S, context: StepContext): Promise<StepResult | undefined>;
  /** Reverses `run`. Must tolerate a partial `run` (it is also called for the failed step). */
  undo?(state: S, context: StepContext): Promise<void>;
  /**
   * Runs after the point of no return (the commit): a failure is recorded, never undone, and
   * the run still succeeds (e.g. a mail the outbox will retry).
   */
  afterCommit?: boolean;
}

export interface EngineDeps {
  prisma: CentralPrisma;
  logger: Logger;
  faults: FaultInjector;
  publish(event: ProvisioningEvent): void;
  observeStep(step: ProvisioningStepName, outcome: 'ok' | 'error', seconds: number): void;
  /** Lease of a RUNNING run, renewed every third of it. @default RUN_LEASE_MS */
  leaseMs?: number;
}

export interface RunInput<S> {
  kind: ProvisioningRunKind;
  /** What the run works on, recorded on the run and its events. */
  subject: RunSubject;
  steps: readonly Step<S>[];
  state: S;
  /** Attempt number recorded on the run and its steps (retries of a background job). @default 1 */
  attempt?: number;
  /**
   * When it returns true for a failure, the run stops without undoing anything (FAILED,
   * `suspended`): the caller will resume it later, e.g. in a background job (hybrid mode).
   */
  suspendOn?: (error: Error, step: ProvisioningStepName) => boolean;
}

export type RunResult =
  | { ok: true; runId: string }
  | {
      ok: false;
      runId: string;
      failedStep: ProvisioningStepName;
      error: Error;
      rolledBack: boolean;
      suspended: boolean;
    };

/** How long a RUNNING run may go without a heartbeat before a reconciler may take it over. */
export const RUN_LEASE_MS = 60_000;

export async function runSteps<S>(deps: EngineDeps, input: RunInput<S>): Promise<RunResult> {
  const { prisma, logger } = deps;
  const attempt = input.attempt ?? 1;
  const leaseMs = deps.leaseMs ?? RUN_LEASE_MS;
  const run = await prisma.provisioningRun.create({
    data: {
      ...subjectColumns(input.subject),
      kind: input.kind,
      attempt,
      leaseUntil: new Date(Date.now() + leaseMs),
    },
    select: { id: true },
  });
  const log = logger.child({ runId: run.id, subject: input.subject.id, kind: input.kind });
  const heartbeat = setInterval(() => {
    prisma.provisioningRun
      .update({ where: { id: run.id }, data: { leaseUntil: new Date(Date.now() + leaseMs) } })
      .catch((error: unknown) => log.warn({ err: error }, 'provisioning lease renewal failed'));
  }, leaseMs / 3);
  heartbeat.unref();

  const startedAt = new Map<ProvisioningStepName, Date>();
  const emit = async (
    step: ProvisioningStepName,
    status: ProvisioningEventStatus,
    fields: { message?: string | null; durationMs?: number | null } = {},
  ) => {
    const at = new Date();
    const message = fields.message ?? null;
    const durationMs = fields.durationMs ?? null;
    if (status === 'STARTED') {
      // The event announces the start now; the record is written once, with the outcome:
      // half the writes of a run (they were most of a registration's commits).
      startedAt.set(step, at);
    } else {
      const error = status === 'FAILED' ? message : undefined;
      await prisma.provisioningStep.upsert({
        where: { runId_name_attempt: { runId: run.id, name: step, attempt } },
        create: {
          runId: run.id,
          name: step,
          attempt,
          status,
          error: error ?? null,
          startedAt: startedAt.get(step) ?? at,
          finishedAt: at,
          durationMs,
        },
        update: {
          status,
          finishedAt: at,
          ...(error !== undefined ? { error } : {}),
          ...(durationMs !== null ? { durationMs } : {}),
        },
      });
    }
    deps.publish({
      runId: run.id,
      kind: input.kind,
      subject: input.subject,
      step,
      status,
      attempt,
      message,
      at,
      durationMs,
    });
  };

  const context: StepContext = { runId: run.id };
  const done: Step<S>[] = [];
  try {
    for (const step of input.steps) {
      await emit(step.name, 'STARTED');
      const started = performance.now();
      if (deps.faults.crashes(step.name)) {
        // Fault injection of a process kill: no more heartbeats, no outcome, no return.
        clearInterval(heartbeat);
        await new Promise<never>(() => {});
      }
      try {
        const result = await tryStep(deps, step, input.state, context, log);
        const durationMs = Math.round(performance.now() - started);
        deps.observeStep(step.name, 'ok', durationMs / 1000);
        done.push(step);
        await emit(step.name, result?.skipped ? 'SKIPPED' : 'SUCCEEDED', {
          message: result?.skipped ?? result?.note ?? null,
          durationMs,
        });
      } catch (caught) {
        const error = caught instanceof Error ? caught : new Error(String(caught));
        const durationMs = Math.round(performance.now() - started);
        deps.observeStep(step.name, 'error', durationMs / 1000);
        await emit(step.name, 'FAILED', { message: describe(error), durationMs });
        // The cause, for the operator: the child logger names the run, its kind and subject.
        log.warn(
          { step: step.name, error: describe(error), errorCode: errorCode(error) },
          'provisioning step failed',
        );
        if (step.afterCommit) {
          log.warn({ err: error, step: step.name }, 'provisioning step after commit failed; kept');
          continue;
        }
        if (input.suspendOn?.(error, step.name)) {
          log.warn({ err: error, step: step.name }, 'provisioning step failed; suspended for a retry');
          await finish(prisma, run.id, 'FAILED', `${step.name} (will retry): ${describe(error)}`);
          return {
            ok: false,
            runId: run.id,
            failedStep: step.name,
            error,
            rolledBack: false,
            suspended: true,
          };
        }
        log.warn({ err: error, step: step.name }, 'provisioning step failed; rolling back');
        // The failed step may have half-done its work: undo it quietly (its record stays
        // FAILED), then the finished ones in reverse, each recorded ROLLED_BACK.
        let rolledBack = await undoQuietly(step, input.state, context, log);
        rolledBack = (await rollBack(done, input.state, context, emit, log)) && rolledBack;
        await finish(
          prisma,
          run.id,
          rolledBack ? 'ROLLED_BACK' : 'FAILED',
          `${step.name}: ${describe(error)}`,
        );
        return { ok: false, runId: run.id, failedStep: step.name, error, rolledBack, suspended: false };
      }
    }
    await finish(prisma, run.id, 'SUCCEEDED', null);
    return { ok: true, runId: run.id };
  } finally {
    clearInterval(heartbeat);
  }
}

/**
 * One step's work: its transient failures (engine/transient.ts) are tried again, a bounded
 * number of times with a doubling backoff, before the step counts as failed.
 */
async function tryStep<S>(
  deps: EngineDeps,
  step: Step<S>,
  state: S,
  context: StepContext,
  log: Logger,
): Promise<StepResult | undefined> {
  for (let retry = 0; ; retry++) {
    try {
      deps.faults.check(step.name);
      return await step.run(state, context);
    } catch (error) {
      if (retry >= STEP_RETRIES || !isTransientStepError(error)) throw error;
      const waitMs = STEP_RETRY_BASE_MS * 2 ** retry;
      log.warn(
        { step: step.name, error: describe(error), errorCode: errorCode(error), retry: retry + 1, waitMs },
        'provisioning step failed transiently; trying again',
      );
      await new Promise((done) => setTimeout(done, waitMs));
    }
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

async function undoQuietly<S>(step: Step<S>, state: S, context: StepContext, log: Logger): Promise<boolean> {
  try {
    await step.undo?.(state, context);
    return true;
  } catch (error) {
    log.error({ err: error, step: step.name }, 'undo of the failed step failed');
    return false;
  }
}

async function rollBack<S>(
  steps: Step<S>[],
  state: S,
  context: StepContext,
  emit: (
    step: ProvisioningStepName,
    status: ProvisioningEventStatus,
    fields?: { message?: string | null },
  ) => Promise<void>,
  log: Logger,
): Promise<boolean> {
  let clean = true;
  for (const step of steps.reverse()) {
    try {
      await step.undo?.(state, context);
      await emit(step.name, 'ROLLED_BACK');
    } catch (error) {
      // Left for the reconciler (orphan sweep); the run ends FAILED rather than ROLLED_BACK.
      clean = false;
      log.error({ err: error, step: step.name }, 'undo failed');
      await emit(step.name, 'FAILED', { message: `undo failed: ${describe(error)}` }).catch(() => {});
    }
  }
  return clean;
}

async function finish(
  prisma: CentralPrisma,
  runId: string,
  status: 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK',
  error: string | null,
): Promise<void> {
  await prisma.provisioningRun.update({
    where: { id: runId },
    data: { status, error, finishedAt: new Date(), leaseUntil: null },
  });
}

/** A short, single-line description safe to store and show to operators. */
export function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').slice(0, 500);
}
