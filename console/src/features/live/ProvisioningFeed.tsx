/**
 * The live provisioning feed: the recent recorded runs, then one `provisioningProgress`
 * subscription (every clinic) for the whole signed-in console, so runs keep accumulating while
 * the operator is on another page, and other pages (clinics table, clinic page, metrics) react
 * to the same events. After a reconnect or an outage the record is read again and the
 * subscription starts over from the last event seen (`since`: the server replays what its
 * records hold from then on), so nothing that happened meanwhile is missing.
 */
import { createContext, type ReactNode, useCallback, useContext, useEffect, useRef, useState } from 'react';
import type { CombinedError } from 'urql';
import { useConnection } from '../../app/connection';
import { useResilientQuery, useSubscriptionEvents } from '../../app/hooks';
import { graphql } from '../../gql';
import { applyEvent, type FeedRun, mergeSnapshot, type ProvisioningEvent } from './feed';

const ProgressSubscription = graphql(`
  subscription ProvisioningFeed_ProgressSubscription($since: DateTime) {
    provisioningProgress(since: $since) {
      runId
      kind
      clinicId
      clinicName
      step
      status
      attempt
      message
      at
      durationMs
      runStatus
    }
  }
`);

graphql(`
  fragment ProvisioningFeed_RunFields on ProvisioningRun {
    id
    kind
    clinicId
    clinicName
    status
    attempt
    error
    startedAt
    finishedAt
    steps {
      name
      status
      attempt
      error
      startedAt
      finishedAt
      durationMs
    }
  }
`);

const RecentRunsQuery = graphql(`
  query ProvisioningFeed_RecentRunsQuery {
    provisioningRuns(first: 30) {
      ...ProvisioningFeed_RunFields
    }
  }
`);

export type { FeedRun, FeedStep, ProvisioningEvent } from './feed';

interface FeedContextValue {
  runs: FeedRun[];
  /** The recorded runs have been read at least once. */
  loaded: boolean;
  error: CombinedError | undefined;
  /** Listens to every event; returns the unsubscribe function. */
  listen(listener: (event: ProvisioningEvent) => void): () => void;
}

const FeedContext = createContext<FeedContextValue | null>(null);

export function ProvisioningFeedProvider({ children }: { children: ReactNode }) {
  const [runs, setRuns] = useState<FeedRun[]>([]);
  const listeners = useRef(new Set<(event: ProvisioningEvent) => void>());
  const recent = useResilientQuery({ query: RecentRunsQuery, requestPolicy: 'network-only' });
  // The newest event seen, and the cursor the subscription was last (re)started from.
  const lastSeen = useRef<string | undefined>(undefined);
  const [since, setSince] = useState<string | undefined>(undefined);
  const { error } = useSubscriptionEvents(ProgressSubscription, since ? { since } : {}, (data) => {
    const event = data.provisioningProgress;
    if (!lastSeen.current || Date.parse(event.at) > Date.parse(lastSeen.current)) lastSeen.current = event.at;
    setRuns((current) => applyEvent(current, event));
    for (const listener of listeners.current) listener(event);
  });

  const snapshot = recent.data?.provisioningRuns;
  useEffect(() => {
    if (snapshot) setRuns((current) => mergeSnapshot(current, snapshot));
  }, [snapshot]);

  // Events sent while the socket was down never came: read the record again once it is back,
  // and subscribe again from the last event seen, which the server replays from.
  const { socket } = useConnection();
  const previous = useRef(socket);
  const refetch = useRef(recent.refetch);
  refetch.current = recent.refetch;
  useEffect(() => {
    if (previous.current === 'closed' && socket === 'open') {
      refetch.current();
      setSince(lastSeen.current);
    }
    previous.current = socket;
  }, [socket]);

  const listen = useCallback((listener: (event: ProvisioningEvent) => void) => {
    listeners.current.add(listener);
    return () => {
      listeners.current.delete(listener);
    };
  }, []);
  return (
    <FeedContext.Provider
      value={{ runs, loaded: snapshot !== undefined, error: error ?? recent.error, listen }}
    >
      {children}
    </FeedContext.Provider>
  );
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
