/**
 * The live provisioning feed: one `provisioningProgress` subscription (every clinic) for the
 * whole signed-in console, so runs keep accumulating while the operator is on another page, and
 * other pages (clinics table, clinic page, metrics) react to the same events.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { CombinedError } from 'urql';
import { useSubscriptionEvents } from '../../app/hooks';
import { graphql } from '../../gql';
import type { ProvisioningFeed_ProgressSubscriptionSubscription } from '../../gql/graphql';

const ProgressSubscription = graphql(`
  subscription ProvisioningFeed_ProgressSubscription {
    provisioningProgress {
      runId
      clinicId
      step
      status
      attempt
      message
      at
      durationMs
    }
  }
`);

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

interface FeedContextValue {
  runs: FeedRun[];
  error: CombinedError | undefined;
  /** Listens to every event; returns the unsubscribe function. */
  listen(listener: (event: ProvisioningEvent) => void): () => void;
}

const FeedContext = createContext<FeedContextValue | null>(null);

export function ProvisioningFeedProvider({ children }: { children: ReactNode }) {
  const [runs, setRuns] = useState<FeedRun[]>([]);
  const listeners = useRef(new Set<(event: ProvisioningEvent) => void>());
  const { error } = useSubscriptionEvents(ProgressSubscription, {}, (data) => {
    const event = data.provisioningProgress;
    setRuns((current) => applyEvent(current, event));
    for (const listener of listeners.current) listener(event);
  });
  const listen = useCallback((listener: (event: ProvisioningEvent) => void) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);
  return <FeedContext.Provider value={{ runs, error, listen }}>{children}</FeedContext.Provider>;
}

export function useProvisioningFeed(): FeedContextValue {
  const value = useContext(FeedContext);
  if (!value) throw new Error('useProvisioningFeed outside ProvisioningFeedProvider');
  return value;
}

/** Calls `listener` for each provisioning event while the component is mounted. */
export function useProvisioningEvents(listener: (event: ProvisioningEvent) => void): void {
  const { listen } = useProvisioningFeed();
  const latest = useRef(listener);
  latest.current = listener;
  useEffect(() => listen((event) => latest.current(event)), [listen]);
}
