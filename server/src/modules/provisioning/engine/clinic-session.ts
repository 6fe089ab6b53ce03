/**
 * The run's one session on the new clinic database, as the clinic's own role: verify_database
 * checks over it and seed_provider writes over it, so a registration connects to the database
 * once (a connection costs about as much as the rest of those two steps together:
 * bench/README.md, `provisioning`). create_database starts connecting as soon as the role can
 * (`openClinicSession`), so the connection is made while the central writes between the steps go
 * out, instead of after them (docs/decisions/067). Closed by seed_provider, and by the undo of
 * any step that may hold it.
 */
import pg from 'pg';
import { probedConnection } from '../../../db/sql.js';
import { clinicRoleUrl } from '../integrity.js';
import type { ProvisionState } from './state.js';

/** The run's clinic session: the one `openClinicSession` started, or a new one. */
export function clinicSession(state: ProvisionState): Promise<pg.Client> {
  state.session ??= connect(state);
  return state.session;
}

/**
 * Starts connecting without waiting for it. A failure is kept for the step that uses the session
 * (verify_database reports it, and a retry connects afresh); nothing else waits on it.
 */
export function openClinicSession(state: ProvisionState): void {
  clinicSession(state).catch(() => {});
}

export async function closeClinicSession(state: ProvisionState): Promise<void> {
  const session = state.session;
  state.session = undefined;
  await session?.then((client) => client.end()).catch(() => {});
}

/** The session's server-side bound on a statement. */
export const CLINIC_SESSION_STATEMENT_TIMEOUT_MS = 5000;
/**
 * The client's own bound on a query's answer (docs/decisions/095): a server whose host vanished
 * (no FIN, no RST) never sends its statement timeout's error, and the kernel retransmits for some
 * 15 minutes. Twice the statement timeout, so a live server's own error always comes first.
 */
export const CLINIC_SESSION_QUERY_TIMEOUT_MS = 2 * CLINIC_SESSION_STATEMENT_TIMEOUT_MS;

async function connect(state: ProvisionState): Promise<pg.Client> {
  if (!state.password) throw new Error('the clinic session needs the role password from create_database');
  const client = new pg.Client({
    // Probed by PostgreSQL too (decision 092): the backend of a vanished run ends in ~25 s.
    ...probedConnection(clinicRoleUrl(state.server.url, state.databaseName, state.roleName, state.password)),
    connectionTimeoutMillis: 3000,
    statement_timeout: CLINIC_SESSION_STATEMENT_TIMEOUT_MS,
    query_timeout: CLINIC_SESSION_QUERY_TIMEOUT_MS,
    application_name: 'onramp',
  });
  // A connection dropped while idle emits 'error'; the next query reports it instead.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    // The cause is kept: its code (ECONNREFUSED, 53300…) tells the runner whether to retry.
    throw new Error(`the clinic role cannot connect: ${error instanceof Error ? error.message : error}`, {
      cause: error,
    });
  }
  return client;
}
