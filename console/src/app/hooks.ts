import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { useEffect, useRef, useState } from 'react';
import { type AnyVariables, type CombinedError, useClient } from 'urql';

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

/** The current time, updated every `intervalMs`, for "12 seconds ago" labels. */
export function useNow(intervalMs = 5_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
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
