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
  /**
   * Records and publishes one step's transition. With `ending`, this is the run's last event: the
   * run's outcome is recorded first, so a subscriber that sees `runStatus` finds the record finished.
   */
  const emit: Emit = async (step, status, fields = {}, ending) => {
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
    if (ending) await finish(prisma, run.id, ending.status, ending.error);
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
      runStatus: ending?.status ?? null,
    });
  };
  const succeeded: RunEnding = { status: 'SUCCEEDED', error: null };

  const context: StepContext = { runId: run.id };
  const done: Step<S>[] = [];
  try {
    for (const [index, step] of input.steps.entries()) {
      const last = index === input.steps.length - 1;
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
        await emit(
          step.name,
          result?.skipped ? 'SKIPPED' : 'SUCCEEDED',
          { message: result?.skipped ?? result?.note ?? null, durationMs },
          last ? succeeded : undefined,
        );
      } catch (caught) {
        const error = caught instanceof Error ? caught : new Error(String(caught));
        const durationMs = Math.round(performance.now() - started);
        deps.observeStep(step.name, 'error', durationMs / 1000);
        const suspended = !step.afterCommit && (input.suspendOn?.(error, step.name) ?? false);
        // A failure after the commit is kept and the run goes on; a suspended run stops here.
        const ending: RunEnding | undefined = step.afterCommit
          ? last
            ? succeeded
            : undefined
          : suspended
            ? { status: 'FAILED', error: `${step.name} (will retry): ${describe(error)}` }
            : undefined;
        await emit(step.name, 'FAILED', { message: describe(error), durationMs }, ending);
        // The cause, for the operator: the child logger names the run, its kind and subject.
        log.warn(
          { step: step.name, error: describe(error), errorCode: errorCode(error) },
          'provisioning step failed',
        );
        if (step.afterCommit) {
          log.warn({ err: error, step: step.name }, 'provisioning step after commit failed; kept');
          continue;
        }
        if (suspended) {
          log.warn({ err: error, step: step.name }, 'provisioning step failed; suspended for a retry');
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
        const failure = `${step.name}: ${describe(error)}`;
        const quiet = await undoQuietly(step, input.state, context, log);
        const rolledBack = await rollBack(done, input.state, context, emit, log, (clean) => ({
          status: clean && quiet ? 'ROLLED_BACK' : 'FAILED',
          error: failure,
        }));
        // Nothing was done before the failed step: no event is left to carry the outcome.
        if (done.length === 0) await finish(prisma, run.id, quiet ? 'ROLLED_BACK' : 'FAILED', failure);
        return {
          ok: false,
          runId: run.id,
          failedStep: step.name,
          error,
          rolledBack: rolledBack && quiet,
          suspended: false,
        };
      }
    }
    if (input.steps.length === 0) await finish(prisma, run.id, 'SUCCEEDED', null);
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

/** The outcome a run's last event records (`finish`) and carries (`runStatus`). */
interface RunEnding {
  status: 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK';
  error: string | null;
}

type Emit = (
  step: ProvisioningStepName,
  status: ProvisioningEventStatus,
  fields?: { message?: string | null; durationMs?: number | null },
  ending?: RunEnding,
) => Promise<void>;

/**
 * Undoes `steps` in reverse, each recorded ROLLED_BACK (or FAILED when its undo fails); the last
 * one's event ends the run with `ending(clean)`. @returns whether every undo succeeded
 */
async function rollBack<S>(
  steps: Step<S>[],
  state: S,
  context: StepContext,
  emit: Emit,
  log: Logger,
  ending: (clean: boolean) => RunEnding,
): Promise<boolean> {
  let clean = true;
  const reversed = [...steps].reverse();
  for (const [index, step] of reversed.entries()) {
    const last = index === reversed.length - 1;
    try {
      await step.undo?.(state, context);
      await emit(step.name, 'ROLLED_BACK', {}, last ? ending(clean) : undefined);
    } catch (error) {
      // Left for the reconciler (orphan sweep); the run ends FAILED rather than ROLLED_BACK.
      clean = false;
      log.error({ err: error, step: step.name }, 'undo failed');
      await emit(
        step.name,
        'FAILED',
        { message: `undo failed: ${describe(error)}` },
        last ? ending(clean) : undefined,
      ).catch(() => {});
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
