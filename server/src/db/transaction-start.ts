/**
 * Interactive transactions that could not start. Prisma gives up on one whose connection the
 * pool did not hand out within `maxWait` (P2028, "Unable to start a transaction in the given
 * time"): under a burst on a busy instance that was an INTERNAL_SERVER_ERROR. Its callback had
 * not run, so starting it again is safe; only that failure is retried (a P2028 after the start,
 * an expired or closed transaction, is not: its callback ran). See docs/decisions/058.
 */

export interface TransactionStartRetry {
  /**
   * Tries in all, the first included.
   * @default 4
   */
  attempts?: number;
  /**
   * Pause before the second try; the n-th waits n times as long.
   * @default 50
   */
  backoffMs?: number;
}

/** Whether `error` is Prisma's "the transaction could not start in time" (nothing of it ran). */
export function isTransactionStartTimeout(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error as { code?: unknown }).code === 'P2028' &&
    /Unable to start a transaction/.test(error.message)
  );
}

/**
 * Makes `client.$transaction(callback)` try again when its transaction could not start in time.
 * Batch transactions (an array of queries) are left as they are.
 * @returns `client` itself.
 */
export function retryTransactionStarts<C extends { $transaction: unknown }>(
  client: C,
  { attempts = 4, backoffMs = 50 }: TransactionStartRetry = {},
): C {
  const start = (client.$transaction as (...args: unknown[]) => Promise<unknown>).bind(client);
  const retrying = async (...args: unknown[]) => {
    if (typeof args[0] !== 'function') return start(...args);
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await start(...args);
      } catch (error) {
        if (attempt >= attempts || !isTransactionStartTimeout(error)) throw error;
        await new Promise((done) => setTimeout(done, backoffMs * attempt));
      }
    }
  };
  Object.defineProperty(client, '$transaction', { value: retrying, configurable: true, writable: true });
  return client;
}
