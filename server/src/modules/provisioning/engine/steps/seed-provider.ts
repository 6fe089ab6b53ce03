import { clinicSession, closeClinicSession } from '../clinic-session.js';
import type { Step } from '../runner.js';
import type { ProvisionState } from '../state.js';

/**
 * The clinic admin as the clinic's first healthcare provider (skipped without an admin), over
 * the run's clinic session, which ends here: no connection lingers per new clinic.
 */
export function seedProviderStep<S extends ProvisionState>(): Step<S> {
  return {
    name: 'seed_provider',
    async run(state) {
      try {
        const admin = state.admin;
        if (!admin) return { skipped: 'no clinic admin to seed' };
        const session = await clinicSession(state);
        const inserted = await session.query(
          `INSERT INTO healthcare_providers (user_id, first_name, last_name, email)
           SELECT $1::uuid, $2, $3, $4
            WHERE NOT EXISTS (SELECT 1 FROM healthcare_providers WHERE user_id IS NOT DISTINCT FROM $1::uuid AND email = $4)`,
          [admin.userId, admin.firstName, admin.lastName, admin.email],
        );
        return inserted.rowCount ? undefined : { note: 'provider already present' };
      } finally {
        // Not waited for: the backend's exit is nobody's wait (a rename of this database, the
        // only thing a live session would block, waits for it: WarmPool.reject).
        void closeClinicSession(state);
      }
    },
  };
}
