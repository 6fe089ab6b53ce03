/**
 * Failures a step retries by itself, a few times with a short backoff, before its run fails
 * (docs/decisions/043): the server refused or reset the connection, had no connection slot left,
 * was still starting up, or did not answer a connect in time. Nothing else (a lock timeout is the
 * rollout's "busy", a constraint a bug): those fail the step at once, as before.
 */

const PG_CODES = new Set([
  '08000',
  '08001',
  '08003',
  '08004',
  '08006', // connection exceptions
  '53300', // too_many_connections
  '57P03', // cannot_connect_now: the database system is starting up
]);
const NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET']);
const PRISMA_CODES = new Set(['P1001', 'P1017']); // server unreachable, closed the connection
/**
 * Also node-postgres's connect timeout ("timeout expired"; "Connection terminated due to
 * connection timeout" in later versions), which has no code: a server too loaded to start a
 * backend within the clinic session's 3 s. A sustained fill on 2 busy cores met it at
 * verify_database, which awaits that session (bench/README.md, sustained provisioning).
 */
const MESSAGE =
  /ECONNREFUSED|ECONNRESET|too many clients|remaining connection slots|the database system is starting up|timeout expired|terminated due to connection timeout/i;

/** Retries of a step's transient failure, after its first try. */
export const STEP_RETRIES = 3;
/** Wait before the first retry, doubled for each next one. */
export const STEP_RETRY_BASE_MS = 100;

export function isTransientStepError(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (PG_CODES.has(code) || NODE_CODES.has(code) || PRISMA_CODES.has(code)))
    return true;
  if (MESSAGE.test(error.message)) return true;
  return isTransientStepError(error.cause, depth + 1);
}
