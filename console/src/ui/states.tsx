import type { ReactNode } from 'react';
import type { CombinedError } from 'urql';
import { describeOutage, useConnection } from '../app/connection';
import { formatTime } from './format';

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="state state-empty">{children}</p>;
}

/** What went wrong, in words an operator can act on; never a stack trace. */
export function describeError(error: CombinedError): string {
  if (error.networkError) return 'The server could not be reached. Check your connection and try again.';
  const first = error.graphQLErrors[0];
  switch (first?.extensions?.code) {
    case 'FORBIDDEN':
      return first.message || 'You are not allowed to see this.';
    case 'RATE_LIMITED':
      return `Too many attempts. Try again in ${String(first.extensions.retryAfter ?? 'a few')} seconds.`;
    case 'UNAUTHENTICATED':
      return 'Your session has ended. Please sign in again.';
    default:
      return first?.message ?? error.message;
  }
}

export function ErrorNotice({
  error,
  message,
  onRetry,
}: {
  error?: CombinedError;
  message?: string;
  onRetry?: () => void;
}) {
  // An outage explains an error better than its masked message ("Unexpected error.").
  const outage = describeOutage(useConnection());
  const internal =
    error?.networkError || error?.graphQLErrors.some((e) => e.extensions?.code === 'INTERNAL_SERVER_ERROR');
  const text = (internal && outage) || message || (error ? describeError(error) : 'Something went wrong.');
  return (
    <div className="notice notice-error" role="alert">
      <p>{text}</p>
      {onRetry && (
        <button type="button" className="button button-small" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** Greys what it wraps while `stale`, and says since when the data dates. */
export function StaleData({
  stale,
  receivedAt,
  children,
}: {
  stale: boolean;
  receivedAt: number | undefined;
  children: ReactNode;
}) {
  return (
    <div className={stale ? 'stale' : undefined} data-stale={stale ? 'true' : undefined}>
      {stale && receivedAt !== undefined && (
        <p className="stale-note" role="status">
          Last known data, from {formatTime(new Date(receivedAt).toISOString())}; it updates once the server
          answers again.
        </p>
      )}
      {children}
    </div>
  );
}
