/**
 * The live feed's state: recorded runs (`provisioningRuns`, so a reload or a reconnect loses
 * nothing) with live provisioning events folded on top. Pure, so unit-testable.
 */
import type {
  ProvisioningFeed_ProgressSubscriptionSubscription,
  ProvisioningFeed_RunFieldsFragment,
} from '../../gql/graphql';

export type ProvisioningEvent = ProvisioningFeed_ProgressSubscriptionSubscription['provisioningProgress'];
export type RunSnapshot = ProvisioningFeed_RunFieldsFragment;

export interface FeedStep {
  name: string;
  attempt: number;
  status: ProvisioningEvent['status'];
  startedAt: string;
  /** Time of the step's latest transition; older news about it is ignored. */
  updatedAt: string;
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
  clinicName: string | null;
  kind: string | null;
  attempt: number;
  startedAt: string;
  updatedAt: string;
  status: FeedRunStatus;
  /** `step: message` of the failure. */
  error: string | null;
  steps: FeedStep[];
  /** Seen happening on this page (not only loaded from the record): shown expanded. */
  live: boolean;
}

export const MAX_RUNS = 50;

const RUN_STATUS: Record<RunSnapshot['status'], FeedRunStatus> = {
  RUNNING: 'RUNNING',
  SUCCEEDED: 'SUCCEEDED',
  FAILED: 'FAILED',
  ROLLED_BACK: 'FAILED',
};

const newer = (a: string, b: string) => Date.parse(a) >= Date.parse(b);

/** Folds one event into the runs, newest run first. Pure: safe in a state updater. */
export function applyEvent(runs: FeedRun[], event: ProvisioningEvent): FeedRun[] {
  const existing = runs.find((run) => run.runId === event.runId);
  const run: FeedRun = existing
    ? { ...existing, steps: [...existing.steps] }
    : {
        runId: event.runId,
        clinicId: event.clinicId,
        clinicName: event.clinicName ?? null,
        kind: event.kind ?? null,
        attempt: event.attempt,
        startedAt: event.at,
        updatedAt: event.at,
        status: 'RUNNING',
        error: null,
        steps: [],
        live: true,
      };
  run.clinicName ??= event.clinicName ?? null;
  run.kind ??= event.kind ?? null;
  if (newer(event.at, run.updatedAt)) run.updatedAt = event.at;
  const index = run.steps.findIndex((step) => step.name === event.step && step.attempt === event.attempt);
  const previous = index >= 0 ? run.steps[index] : undefined;
  // Events can arrive after a snapshot that already holds them: never move a step backwards.
  if (previous && !newer(event.at, previous.updatedAt)) return runs;
  const step: FeedStep = {
    name: event.step,
    attempt: event.attempt,
    status: event.status,
    startedAt: previous?.startedAt ?? event.at,
    updatedAt: event.at,
    durationMs: event.status === 'ROLLED_BACK' ? (previous?.durationMs ?? null) : event.durationMs,
    rollbackMs: event.status === 'ROLLED_BACK' ? event.durationMs : null,
    message: event.message ?? previous?.message ?? null,
  };
  if (index >= 0) run.steps[index] = step;
  else run.steps.push(step);
  // A failed step fails the run at once (its undo follows); the event that ends the run says how
  // it ended, whichever step its plan ends with (a failure after the commit is kept: SUCCEEDED).
  if (event.status === 'FAILED' && run.status === 'RUNNING') {
    run.status = 'FAILED';
    run.error ??= `${event.step}: ${event.message ?? 'failed'}`;
  }
  if (event.runStatus) {
    run.status = RUN_STATUS[event.runStatus];
    if (run.status === 'SUCCEEDED') run.error = null;
  }
  const others = runs.filter((other) => other.runId !== event.runId);
  return [run, ...others].slice(0, MAX_RUNS);
}

/** A recorded run as the feed shows it. */
export function fromSnapshot(run: RunSnapshot): FeedRun {
  const steps = run.steps.map(
    (step): FeedStep => ({
      name: step.name,
      attempt: step.attempt,
      status: step.status,
      startedAt: step.startedAt,
      updatedAt: step.finishedAt ?? step.startedAt,
      durationMs: step.durationMs ?? null,
      rollbackMs: null,
      message: step.error ?? null,
    }),
  );
  const times = [run.finishedAt ?? run.startedAt, ...steps.map((step) => step.updatedAt)];
  return {
    runId: run.id,
    clinicId: run.clinicId,
    clinicName: run.clinicName ?? null,
    kind: run.kind,
    attempt: run.attempt,
    startedAt: run.startedAt,
    updatedAt: times.reduce((a, b) => (newer(a, b) ? a : b)),
    status: RUN_STATUS[run.status],
    error: run.error ?? null,
    steps,
    live: false,
  };
}

/**
 * Merges recorded runs into the feed: for a run known both ways, the newer news of each step
 * wins; runs only seen live stay. Newest activity first, at most MAX_RUNS.
 */
export function mergeSnapshot(runs: FeedRun[], snapshot: RunSnapshot[]): FeedRun[] {
  const merged = new Map(runs.map((run) => [run.runId, run]));
  for (const recorded of snapshot.map(fromSnapshot)) {
    const seen = merged.get(recorded.runId);
    if (!seen) {
      merged.set(recorded.runId, recorded);
      continue;
    }
    const steps = new Map(recorded.steps.map((step) => [`${step.name}:${step.attempt}`, step]));
    for (const step of seen.steps) {
      const key = `${step.name}:${step.attempt}`;
      const other = steps.get(key);
      if (!other || newer(step.updatedAt, other.updatedAt)) steps.set(key, step);
    }
    const ordered = [...steps.values()].sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt));
    const finished = recorded.status !== 'RUNNING';
    merged.set(recorded.runId, {
      ...recorded,
      clinicName: recorded.clinicName ?? seen.clinicName,
      status: finished ? recorded.status : seen.status,
      error: recorded.error ?? seen.error,
      updatedAt: newer(seen.updatedAt, recorded.updatedAt) ? seen.updatedAt : recorded.updatedAt,
      steps: ordered,
      live: seen.live,
    });
  }
  return [...merged.values()]
    .sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt))
    .slice(0, MAX_RUNS);
}
