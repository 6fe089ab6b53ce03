/**
 * The runner's former face, for code written against it (a clinic as the subject, by id): the
 * runner itself is engine/runner.ts (docs/decisions/043).
 */
import { clinicSubject } from './engine/events.js';
import { type EngineDeps, type RunInput, type RunResult, runSteps, type Step } from './engine/runner.js';

export type { ProvisioningEvent, ProvisioningEventStatus } from './engine/events.js';
export { describe, RUN_LEASE_MS, type StepContext, type StepResult } from './engine/runner.js';

export type SagaStep<S> = Step<S>;
export type SagaDeps = EngineDeps;
export type SagaResult = RunResult;

export interface SagaInput<S> extends Omit<RunInput<S>, 'subject'> {
  clinicId: string;
  /** Name of the clinic, recorded on the run and its events. */
  subjectName?: string | null;
}

/** Runs `steps` as one recorded run of the clinic `clinicId` (engine/runner.ts). */
export function runSaga<S>(deps: SagaDeps, input: SagaInput<S>): Promise<SagaResult> {
  const { clinicId, subjectName, ...rest } = input;
  return runSteps(deps, { ...rest, subject: clinicSubject(clinicId, subjectName ?? null) });
}
