/** The live feed's state: provisioning events folded into runs. Pure, so unit-testable. */
import type { ProvisioningFeed_ProgressSubscriptionSubscription } from '../../gql/graphql';

export type ProvisioningEvent = ProvisioningFeed_ProgressSubscriptionSubscription['provisioningProgress'];

export interface FeedStep {
  name: string;
  attempt: number;
  status: ProvisioningEvent['status'];
  startedAt: string;
  /** Duration of the step itself (its SUCCEEDED or FAILED event). */
  durationMs: number | null;
  /** Duration of its undo, when it was rolled back. */
  rollbackMs: number | null;
  message: string | null;
}

export type FeedRunStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED';

export interface FeedRun {
  runId: string;
  clinicId: string;
  attempt: number;
  startedAt: string;
  updatedAt: string;
  status: FeedRunStatus;
  steps: FeedStep[];
}

const MAX_RUNS = 50;

/** Folds one event into the runs, newest run first. Pure: safe in a state updater. */
export function applyEvent(runs: FeedRun[], event: ProvisioningEvent): FeedRun[] {
  const existing = runs.find((run) => run.runId === event.runId);
  const run: FeedRun = existing
    ? { ...existing, steps: [...existing.steps] }
    : {
        runId: event.runId,
        clinicId: event.clinicId,
        attempt: event.attempt,
        startedAt: event.at,
        updatedAt: event.at,
        status: 'RUNNING',
        steps: [],
      };
  run.updatedAt = event.at;
  const index = run.steps.findIndex((step) => step.name === event.step && step.attempt === event.attempt);
  const previous = index >= 0 ? run.steps[index] : undefined;
  const step: FeedStep = {
    name: event.step,
    attempt: event.attempt,
    status: event.status,
    startedAt: previous?.startedAt ?? event.at,
    durationMs: event.status === 'ROLLED_BACK' ? (previous?.durationMs ?? null) : event.durationMs,
    rollbackMs: event.status === 'ROLLED_BACK' ? event.durationMs : null,
    message: event.message ?? previous?.message ?? null,
  };
  if (index >= 0) run.steps[index] = step;
  else run.steps.push(step);
  if (event.status === 'FAILED') run.status = 'FAILED';
  else if (event.step === 'commit' && event.status === 'SUCCEEDED' && run.status !== 'FAILED')
    run.status = 'SUCCEEDED';
  const others = runs.filter((other) => other.runId !== event.runId);
  return [run, ...others].slice(0, MAX_RUNS);
}
