import { withClient } from '../../../../db/sql.js';
import { clinicRoleUrl } from '../../integrity.js';
import type { Step } from '../runner.js';
import type { ProvisionState } from '../state.js';

/** The clinic admin as the clinic's first healthcare provider (skipped without an admin). */
export function seedProviderStep<S extends ProvisionState>(): Step<S> {
  return {
    name: 'seed_provider',
    async run(state) {
      const admin = state.admin;
      if (!admin) return { skipped: 'no clinic admin to seed' };
      if (!state.password) throw new Error('seed_provider needs the role password from create_database');
      // As the clinic role, on a short session: no pooled client lingers per new clinic.
      const url = clinicRoleUrl(state.server.url, state.databaseName, state.roleName, state.password);
      const inserted = await withClient(url, (client) =>
        client.query(
          `INSERT INTO healthcare_providers (user_id, first_name, last_name, email)
           SELECT $1::uuid, $2, $3, $4
            WHERE NOT EXISTS (SELECT 1 FROM healthcare_providers WHERE user_id IS NOT DISTINCT FROM $1::uuid AND email = $4)`,
          [admin.userId, admin.firstName, admin.lastName, admin.email],
        ),
      );
      return inserted.rowCount ? undefined : { note: 'provider already present' };
    },
  };
}
