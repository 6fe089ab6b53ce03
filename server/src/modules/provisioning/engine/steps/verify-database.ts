import { withPooled } from '../../../../db/sql.js';
import { clinicDatabaseGrants, cloneDatabase } from '../../admin.js';
import { inspectClinicSchema } from '../../schema-shape.js';
import { clinicSession, closeClinicSession } from '../clinic-session.js';
import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/**
 * The database answers the clinic role and has the expected shape, or the step fails. Checked on
 * the run's clinic session, which seed_provider then writes over (engine/clinic-session.ts). A
 * claimed warm spare is a closed copy of the template, inspected when it was built, and its
 * claim changed only its name and grants, so what is read again is what the grants decide:
 * every table, readable by this role (decision 093).
 * A claimed spare that fails is taken aside (kept, reported) and the database cloned afresh.
 */
export function verifyDatabaseStep<S extends ProvisionState>(deps: StepDeps): Step<S> {
  const { shape, version } = deps.integrity;
  return {
    name: 'verify_database',
    async run(state) {
      // A failed check or a broken session is not reused by a retry or the next attempt.
      return check(state).catch(async (error: unknown) => {
        await closeClinicSession(state);
        throw error;
      });
    },
    async undo(state) {
      await closeClinicSession(state);
    },
  };

  async function check(state: S) {
    const claimed = state.databaseSource === 'pool';
    let found = await inspectClinicSchema(await clinicSession(state), shape, claimed ? null : version);
    let note: string | undefined;
    if (claimed && found.errors.length > 0) {
      const why = found.errors.join('; ');
      await closeClinicSession(state);
      await withPooled(state.server.admin, async (admin) => {
        await deps.pool.reject(admin, state.server, state.databaseName, state.roleName, why);
        await cloneDatabase(admin, state.databaseName, state.server.template.name);
        await admin.query(clinicDatabaseGrants(deps.deploymentId, state.databaseName, state.roleName));
      });
      state.databaseSource = 'clone';
      note = `the claimed warm spare failed its check (${why}): kept aside; cloned from the template`;
      found = await inspectClinicSchema(await clinicSession(state), shape, version);
    }
    if (found.errors.length > 0) {
      throw new Error(`clinic database is DEGRADED: ${found.errors.join('; ')}`);
    }
    return note ? { note } : undefined;
  }
}
