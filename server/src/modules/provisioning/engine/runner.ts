/**
 * The engine's runner: runs a plan's steps in order, records the run and every step transition
 * in the central database, publishes a ProvisioningEvent for each, and on failure undoes the
 * finished steps in reverse (ROLLED_BACK). docs/decisions/005 explains why a saga and not one
 * transaction: a database, a role and DNS records cannot join a PostgreSQL transaction;
 * docs/decisions/043 why every lifecycle operation of a clinic is such a run.
 */
import type { CentralPrisma } from '../../../db/database.js';
import { execute, queryRows, type RawWriteDb, type Transaction } from '../../../db/raw.js';
import { Prisma } from '../../../generated/central/client.js';
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
  /**
   * Writes this step's SUCCEEDED record inside `tx`, the step's own central transaction, as its
   * last statement: the step's central writes and its outcome then commit, or roll back, together
   * (no commit of their own for the record; docs/decisions/063). A step that calls it must not
   * return `skipped`. A step with no central transaction leaves the record to the runner.
   */
  record(tx: Transaction): Promise<void>;
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
  // The run's records go through pg beside Prisma (db/raw.ts): a dozen statements per
  // registration, each ~0.3–0.6 ms of CPU less without the engine (decision 070).
  const subject = subjectColumns(input.subject);
  const [run] = await queryRows<{ id: string }>(
    prisma,
    Prisma.sql`
      INSERT INTO provisioning_runs
        (subject_kind, clinic_id, onboarding_id, subject_name, kind, attempt, lease_until)
      VALUES (${subject.subjectKind}::"ProvisioningSubjectKind", ${subject.clinicId}::uuid,
        ${subject.onboardingId}::uuid, ${subject.subjectName ?? null}, ${input.kind}::"ProvisioningRunKind",
        ${attempt}::int, ${new Date(Date.now() + leaseMs)}::timestamptz)
      RETURNING id`,
  );
  if (!run) throw new Error('provisioning run not recorded');
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
    } else if (fields.recorded) {
      // Written in the step's own transaction (StepContext.record); only the run's end is left.
      if (ending) await finish(prisma, run.id, ending.status, ending.error);
    } else {
      const record: StepRecord = {
        runId: run.id,
        name: step,
        attempt,
        status,
        error: status === 'FAILED' ? message : undefined,
        startedAt: startedAt.get(step) ?? at,
        finishedAt: at,
        durationMs,
      };
      // The run's last record and its outcome are one statement (one commit, not two).
      if (ending) await recordAndFinish(prisma, record, ending);
      else await writeStepRecord(prisma, record);
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
      runStatus: ending?.status ?? null,
    });
  };
  const succeeded: RunEnding = { status: 'SUCCEEDED', error: null };

  const done: Step<S>[] = [];
  /** Fault injection of a process kill: no more heartbeats, no outcome, no return. */
  const die = async (): Promise<never> => {
    clearInterval(heartbeat);
    return new Promise<never>(() => {});
  };
  try {
    for (const [index, step] of input.steps.entries()) {
      const last = index === input.steps.length - 1;
      await emit(step.name, 'STARTED');
      const started = performance.now();
      if (deps.faults.crashes(step.name)) await die();
      const held = deps.faults.held(step.name);
      if (held) await held;
      /** Set when the step's own transaction wrote its record; reset by each try. */
      const recorded: { durationMs: number | null } = { durationMs: null };
      const context: StepContext = {
        runId: run.id,
        async record(tx) {
          const durationMs = Math.round(performance.now() - started);
          const at = new Date();
          await writeStepRecord(tx, {
            runId: run.id,
            name: step.name,
            attempt,
            status: 'SUCCEEDED',
            startedAt: startedAt.get(step.name) ?? at,
            finishedAt: at,
            durationMs,
          });
          recorded.durationMs = durationMs;
        },
      };
      try {
        const result = await tryStep(deps, step, input.state, context, log, () => {
          recorded.durationMs = null;
        });
        // The step's work, and its record when it wrote one, are committed; nothing else is.
        if (deps.faults.crashesAfter(step.name)) await die();
        const durationMs = recorded.durationMs ?? Math.round(performance.now() - started);
        deps.observeStep(step.name, 'ok', durationMs / 1000);
        done.push(step);
        await emit(
          step.name,
          result?.skipped ? 'SKIPPED' : 'SUCCEEDED',
          {
            message: result?.skipped ?? result?.note ?? null,
            durationMs,
            recorded: recorded.durationMs !== null,
          },
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
  beforeTry: () => void,
): Promise<StepResult | undefined> {
  for (let retry = 0; ; retry++) {
    try {
      // A try that failed rolled its transaction back, the record it may have written with it.
      beforeTry();
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
  fields?: {
    message?: string | null;
    durationMs?: number | null;
    /** The step's record is written already, in its own transaction (StepContext.record). */
    recorded?: boolean;
  },
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

/** One step's outcome as `provisioning_steps` keeps it (one row per run, step and attempt). */
interface StepRecord {
  runId: string;
  name: ProvisioningStepName;
  attempt: number;
  status: Exclude<ProvisioningEventStatus, 'STARTED'>;
  /** Set for FAILED (null: no message); undefined keeps what the row has. */
  error?: string | null;
  startedAt: Date;
  finishedAt: Date;
  /** Null keeps what the row has (an undo's record keeps the run's duration). */
  durationMs: number | null;
}

/** The upsert of `record`: the row of its step and attempt, or its new outcome (an undo's). */
function stepRecordSql(record: StepRecord): Prisma.Sql {
  const { runId, name, attempt, status, error, startedAt, finishedAt, durationMs } = record;
  // `error` undefined keeps what the row has; `durationMs` null keeps it too (an undo's record
  // keeps the run's duration).
  return Prisma.sql`
    INSERT INTO provisioning_steps
      (run_id, name, attempt, status, error, started_at, finished_at, duration_ms)
    VALUES (${runId}::uuid, ${name}::text, ${attempt}::int, ${status}::"ProvisioningStepStatus",
      ${error ?? null}::text, ${startedAt}::timestamptz, ${finishedAt}::timestamptz, ${durationMs}::int)
    ON CONFLICT (run_id, name, attempt) DO UPDATE SET
      status = excluded.status,
      finished_at = excluded.finished_at,
      error = CASE WHEN ${error !== undefined}::boolean THEN excluded.error ELSE provisioning_steps.error END,
      duration_ms = COALESCE(excluded.duration_ms, provisioning_steps.duration_ms)`;
}

/**
 * Writes `record`. On the central client it goes through pg, beside Prisma's engine; in a
 * step's transaction through the transaction's own connection (db/raw.ts `execute`).
 */
async function writeStepRecord(prisma: RawWriteDb, record: StepRecord): Promise<void> {
  await execute(prisma, stepRecordSql(record));
}

/**
 * `record` and the run's outcome in one statement, so one commit: the run is never finished
 * without its last step's record, nor the other way round.
 */
async function recordAndFinish(prisma: CentralPrisma, record: StepRecord, ending: RunEnding): Promise<void> {
  await execute(
    prisma,
    Prisma.sql`WITH step AS (${stepRecordSql(record)}) ${runEndSql(record.runId, ending, record.finishedAt)}`,
  );
}

/** The update that ends run `runId` with `ending`, its lease released. */
function runEndSql(runId: string, ending: RunEnding, finishedAt: Date): Prisma.Sql {
  return Prisma.sql`
    UPDATE provisioning_runs
    SET status = ${ending.status}::"ProvisioningRunStatus", error = ${ending.error}::text,
      finished_at = ${finishedAt}::timestamptz, lease_until = NULL
    WHERE id = ${runId}::uuid`;
}

async function finish(
  prisma: CentralPrisma,
  runId: string,
  status: RunEnding['status'],
  error: string | null,
): Promise<void> {
  await execute(prisma, runEndSql(runId, { status, error }, new Date()));
}

/** A short, single-line description safe to store and show to operators. */
export function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s+/g, ' ').slice(0, 500);
}
