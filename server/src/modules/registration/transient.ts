/**
 * Which failures are worth retrying later (hybrid mode): the database was unreachable, dropped
 * the connection, ran out of connections, or a lock or statement timed out; and injected faults,
 * which stand in for those in tests. Anything else (a bug, a constraint) fails for good.
 */
import { InjectedFault } from '../provisioning/index.js';

const TRANSIENT_PG_CODES = new Set([
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '08007', // connection exceptions
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '55P03', // lock_not_available
  '57014', // query_canceled (statement timeout)
  '57P01',
  '57P02',
  '57P03', // admin / crash shutdown, cannot connect now
  '40001',
  '40P01', // serialization failure, deadlock
]);
const TRANSIENT_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);
const TRANSIENT_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2034']);
const TRANSIENT_MESSAGE =
  /terminating connection|connection terminated|server closed the connection|too many clients|remaining connection slots|timeout|timed out|ECONNREFUSED|ECONNRESET/i;

export function isTransient(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  if (error instanceof InjectedFault) return true;
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === 'string' &&
    (TRANSIENT_PG_CODES.has(code) || TRANSIENT_NODE_CODES.has(code) || TRANSIENT_PRISMA_CODES.has(code))
  ) {
    return true;
  }
  if (TRANSIENT_MESSAGE.test(error.message)) return true;
  return isTransient(error.cause, depth + 1);
}
