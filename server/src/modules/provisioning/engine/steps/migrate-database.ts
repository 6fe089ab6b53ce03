import { migrate } from '../../../../db/migrator.js';
import { withServerClient } from '../../../../db/servers.js';
import { grantGroupPrivileges } from '../../admin.js';
import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/** Applies the clinic migrations the database lacks and records its schema version. */
export function migrateDatabaseStep<S extends ProvisionState>(deps: StepDeps): Step<S> {
  return {
    name: 'migrate_database',
    async run(state) {
      // A fresh clone (or spare) is at the template's version by construction, which
      // create_database recorded with its password.
      const fresh = state.databaseSource === 'clone' || state.databaseSource === 'pool';
      if (fresh) return undefined;
      // Checked to be on the server's cluster as it opens (decision 097).
      const { applied, version } = await withServerClient(
        state.server,
        state.databaseName,
        async (client) => {
          const result = await migrate(client, deps.clinicMigrations);
          if (result.applied.length > 0) await grantGroupPrivileges(client);
          return result;
        },
      );
      await deps.prisma.clinic.update({ where: { id: state.clinicId }, data: { schemaVersion: version } });
      return applied.length > 0 ? { note: `applied ${applied.join(', ')}` } : undefined;
    },
  };
}
