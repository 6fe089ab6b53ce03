import type pg from 'pg';
import { encryptSecret } from '../../../../crypto.js';
import type { ClinicServer } from '../../../../db/database.js';
import { execute } from '../../../../db/raw.js';
import { ServerIdentityError } from '../../../../db/servers.js';
import { quoteIdent, withPooled } from '../../../../db/sql.js';
import { Prisma } from '../../../../generated/central/client.js';
import {
  clinicDatabaseGrants,
  clinicRoleSql,
  cloneDatabase,
  databaseExists,
  ensureRole,
  grantClinicRole,
} from '../../admin.js';
import { ServerUnreachableError } from '../../errors.js';
import { randomPassword } from '../../secrets.js';
import { closeClinicSession, openClinicSession } from '../clinic-session.js';
import type { Step } from '../runner.js';
import { ledgerObjects, type ProvisionState, type StepDeps } from '../state.js';

/**
 * The clinic's database (a warm spare, a clone of the template, or the one an earlier attempt
 * made) and its role, with a new password stored encrypted. Undone through the ledger, which
 * knows what this run created (docs/decisions/040).
 */
export function createDatabaseStep<S extends ProvisionState>(deps: StepDeps): Step<S> {
  return {
    name: 'create_database',
    async run(state, { runId }) {
      const password = randomPassword();
      // A retry resets the password: a session an earlier try started is not reused.
      await closeClinicSession(state);
      // One warm admin session for all of it, in as few messages as it takes: new connections
      // and round trips are the dominant cost here. With a spare, the role, the claim's rename
      // and the grants are one message (docs/decisions/072); a role or database an earlier try
      // left (42710, 42P04) rolls it back whole and takes the careful path below. The session is
      // on the server's identified cluster (checked as it opened, decision 086), so nothing below
      // can land on another one; it is taken before the ledger names the server.
      const server = await withPlacedSession(deps, state, async (admin, server) => {
        // Written down before it exists: what a crash leaves behind is known, never guessed.
        await deps.ledger.record(ledgerObjects(state), runId);
        const grants = clinicDatabaseGrants(deps.deploymentId, state.databaseName, state.roleName);
        let looked = false;
        try {
          if (
            await deps.pool.claim(
              admin,
              server,
              state.databaseName,
              grants,
              clinicRoleSql(state.roleName, password),
            )
          ) {
            state.databaseSource = 'pool';
            return;
          }
          // No spare, and the role was not made: the careful path, without a second lookup.
          looked = true;
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code !== '42710' && code !== '42P04') throw error;
        }
        await ensureRole(admin, state.roleName, password);
        if (await databaseExists(admin, state.databaseName)) {
          state.databaseSource = 'existing';
          // A claim stopped between its rename and its reopening (two messages before decision
          // 067) left it closed; reopening an open one changes nothing.
          await admin.query(
            `ALTER DATABASE ${quoteIdent(state.databaseName)} ALLOW_CONNECTIONS true; ${grants}`,
          );
        } else if (!looked && (await deps.pool.claim(admin, server, state.databaseName, grants)))
          state.databaseSource = 'pool';
        else {
          await cloneDatabase(admin, state.databaseName, server.template.name);
          await admin.query(grants);
          state.databaseSource = 'clone';
        }
      });
      // A clone carries the group's grants from the template; a database found from an earlier
      // attempt may predate a repair or an upgrade, so its grants are restored in full.
      if (state.databaseSource === 'existing')
        await grantClinicRole(server, state.databaseName, state.roleName);
      state.password = password;
      // The role can connect from here on: the clinic session is made while the central write
      // below and the runner's records go out (engine/clinic-session.ts).
      openClinicSession(state);
      // A fresh database is at the template's version by construction: recorded in the same
      // write, so migrate_database has nothing to do for it.
      const fresh = state.databaseSource !== 'existing';
      // Through pg beside Prisma's engine (db/raw.ts, decision 070).
      const updated = await execute(
        deps.prisma,
        Prisma.sql`
          UPDATE clinics SET
            database_password_enc = ${encryptSecret(password, deps.encryptionKey, state.clinicId)}::text,
            schema_version = CASE WHEN ${fresh}::boolean THEN ${server.template.version}::text ELSE schema_version END,
            updated_at = now()
          WHERE id = ${state.clinicId}::uuid`,
      );
      // As Prisma's update did: a clinic gone meanwhile is an error, not a silent no-op.
      if (updated !== 1) throw new Error(`clinic ${state.clinicId} not found`);
      const notes = {
        pool: 'claimed a warm spare',
        clone: 'cloned from the template',
        existing: 'database already existed',
      };
      return { note: notes[state.databaseSource ?? 'clone'] };
    },
    async undo(state, { runId }) {
      await closeClinicSession(state);
      await deps.clients.evict(state.clinicId);
      await deps.ledger.undoCreated(ledgerObjects(state), runId);
    },
  };
}

/**
 * The database and role of a clinic going away, quarantined, never dropped: a clinic may hold
 * data (decision 040); the purge drops them after `retentionSeconds`.
 */
export function quarantineDatabaseStep<S extends ProvisionState>(
  deps: Pick<StepDeps, 'clients' | 'ledger'>,
  reason: string,
  retentionSeconds: number,
): Step<S> {
  return {
    name: 'create_database',
    async run(state) {
      await deps.clients.evict(state.clinicId);
      await deps.ledger.quarantineClinic(state.clinicId, reason, retentionSeconds);
      return { note: `quarantined ${state.databaseName}` };
    },
  };
}

/**
 * Runs `work` on a warm admin session of the clinic's server. When that server's address answers
 * as another cluster (the session is refused as it opens and the server leaves the registry,
 * decision 086), a clinic this run created is placed anew on a server identified now, before
 * anything named the first one: its row points at the new server and the run goes on there. A
 * clinic older than the run may have objects on the first one: it waits for it.
 * @returns the server `work` ran on (`state.server`)
 * @throws ServerUnreachableError when no identified server is left, or the clinic predates the run
 */
async function withPlacedSession<S extends ProvisionState>(
  deps: StepDeps,
  state: S,
  work: (admin: pg.PoolClient, server: ClinicServer) => Promise<void>,
): Promise<ClinicServer> {
  // Each turn takes a server out of the registry: as many turns as there are servers at most.
  for (;;) {
    const from = state.server;
    let opened = false;
    try {
      await withPooled(from.admin, (admin) => {
        opened = true;
        return work(admin, from);
      });
      return from;
    } catch (error) {
      if (opened || !(error instanceof ServerIdentityError)) throw error;
      if (!state.createdInRun)
        throw new ServerUnreachableError(`database server ${from.name} is unreachable: ${error.message}`);
      const to = await deps.placeClinic();
      // Through pg beside Prisma's engine (db/raw.ts, decision 070).
      const moved = await execute(
        deps.prisma,
        Prisma.sql`
          UPDATE clinics SET database_server_id = ${to.id}::uuid, updated_at = now()
          WHERE id = ${state.clinicId}::uuid AND database_server_id = ${from.id}::uuid`,
      );
      if (moved !== 1) throw new Error(`clinic ${state.clinicId} not found on database server ${from.name}`);
      state.server = to;
    }
  }
}
