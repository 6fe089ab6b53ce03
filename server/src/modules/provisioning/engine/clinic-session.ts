/**
 * The run's one session on the new clinic database, as the clinic's own role: verify_database
 * opens it and seed_provider writes over it, so a registration connects to the database once
 * (a connection costs about as much as the rest of those two steps together: bench/README.md,
 * `provisioning`). Closed by seed_provider, and by the undo of any step that may hold it.
 */
import pg from 'pg';
import { clinicRoleUrl } from '../integrity.js';
import type { ProvisionState } from './state.js';

/** The run's clinic session, opened on first use. */
export async function clinicSession(state: ProvisionState): Promise<pg.Client> {
  if (state.session) return state.session;
  if (!state.password) throw new Error('the clinic session needs the role password from create_database');
  const client = new pg.Client({
    connectionString: clinicRoleUrl(state.server.url, state.databaseName, state.roleName, state.password),
    connectionTimeoutMillis: 3000,
    statement_timeout: 5000,
    application_name: 'onramp',
  });
  // A connection dropped while idle emits 'error'; the next query reports it instead.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw new Error(`the clinic role cannot connect: ${error instanceof Error ? error.message : error}`);
  }
  state.session = client;
  return client;
}

export async function closeClinicSession(state: ProvisionState): Promise<void> {
  const client = state.session;
  state.session = undefined;
  await client?.end().catch(() => {});
}
