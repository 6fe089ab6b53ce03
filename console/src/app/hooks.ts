import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { useEffect, useRef, useState } from 'react';
import { type AnyVariables, type CombinedError, type UseQueryArgs, useClient, useQuery } from 'urql';
import { connection, useConnection } from './connection';

/**
 * Calls `onData` for every event of a subscription, exactly once per event. (urql's
 * useSubscription folds events in a state updater, which StrictMode may run twice.)
 */
export function useSubscriptionEvents<Data, Variables extends AnyVariables>(
  query: TypedDocumentNode<Data, Variables>,
  variables: Variables,
  onData: (data: Data) => void,
  options: { pause?: boolean } = {},
): { error: CombinedError | undefined } {
  const client = useClient();
  const [error, setError] = useState<CombinedError>();
  const handler = useRef(onData);
  handler.current = onData;
  const key = JSON.stringify(variables);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `key` stands for `variables`.
  useEffect(() => {
    if (options.pause) return;
    const subscription = client.subscription(query, variables).subscribe((result) => {
      setError(result.error);
      if (result.data) handler.current(result.data);
    });
    return () => subscription.unsubscribe();
  }, [client, query, key, options.pause]);
  return { error };
}

/**
 * Re-renders every `intervalMs`, for "12 seconds ago" labels, and returns the time of THIS
 * render. (It used to return the time of the last tick: a health event arriving between ticks
 * was then newer than "now" and read "in 3 seconds".)
 */
export function useNow(intervalMs = 5_000): number {
  const [, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick((tick) => tick + 1), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return Date.now();
}

export interface ResilientQueryState<Data> {
  /** The latest data, or the last data known when the latest attempt failed. */
  data: Data | undefined;
  fetching: boolean;
  error: CombinedError | undefined;
  /** True when `data` is from before a failure or an outage: show it greyed. */
  stale: boolean;
  /** When `data` was received (epoch ms). */
  receivedAt: number | undefined;
  refetch(): void;
}

/**
 * urql's useQuery, plus what an outage needs: the last data stays (greyed by the caller) when a
 * refetch fails, and the query runs again once the API and the database are back.
 */
export function useResilientQuery<Data, Variables extends AnyVariables>(
  args: UseQueryArgs<Variables, Data>,
): ResilientQueryState<Data> {
  const [result, reexecute] = useQuery<Data, Variables>(args);
  const last = useRef<{ data: Data | undefined; at: number | undefined }>({ data: undefined, at: undefined });
  // A failed query answers `data: null` (or nothing): that is no news, the last data stays.
  if (result.data != null && result.data !== last.current.data) {
    last.current = { data: result.data, at: Date.now() };
  }
  const state = useConnection();
  const outage = state.api !== 'ok' || state.database !== 'ok';
  const refetch = useRef(() => reexecute({ requestPolicy: 'network-only' }));
  refetch.current = () => reexecute({ requestPolicy: 'network-only' });
  useEffect(() => connection.onRecovered(() => refetch.current()), []);
  return {
    data: last.current.data,
    fetching: result.fetching,
    error: result.error,
    stale: last.current.data != null && (result.error !== undefined || outage),
    receivedAt: last.current.at,
    refetch: () => refetch.current(),
  };
}

/** A function that runs `fn` once `ms` after the last call (bursts of events → one refetch). */
export function useDebounced(fn: () => void, ms: number): () => void {
  const latest = useRef(fn);
  latest.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout>>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  const schedule = useRef(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => latest.current(), ms);
  });
  return schedule.current;
}
