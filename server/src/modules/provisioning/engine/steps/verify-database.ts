import { checkClinicDatabaseIntegrity } from '../../integrity.js';
import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/** The database answers the clinic role and has the expected shape: HEALTHY, or the step fails. */
export function verifyDatabaseStep<S extends ProvisionState>(deps: StepDeps): Step<S> {
  return {
    name: 'verify_database',
    async run(state) {
      const clinic = await deps.prisma.clinic.findUniqueOrThrow({ where: { id: state.clinicId } });
      // Checked as READY: the clinic row still says PROVISIONING, which the check would skip.
      // Existence is known (create_database just made it); the probe connects as the clinic role.
      const health = await checkClinicDatabaseIntegrity({ ...clinic, status: 'READY' }, deps.integrity, true);
      if (health.dbStatus !== 'HEALTHY') {
        throw new Error(`clinic database is ${health.dbStatus}: ${health.errors.join('; ')}`);
      }
      return undefined;
    },
  };
}
