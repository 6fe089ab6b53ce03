/**
 * The live provisioning feed: one `provisioningProgress` subscription (every clinic) for the
 * whole signed-in console, so runs keep accumulating while the operator is on another page, and
 * other pages (clinics table, clinic page, metrics) react to the same events.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { CombinedError } from 'urql';
import { useSubscriptionEvents } from '../../app/hooks';
import { graphql } from '../../gql';
import { applyEvent, type FeedRun, type ProvisioningEvent } from './feed';

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

export type { FeedRun, FeedStep, ProvisioningEvent } from './feed';

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
