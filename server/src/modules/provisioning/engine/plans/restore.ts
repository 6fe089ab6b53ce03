import type { Step, StepContext } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';
import { certificateStep } from '../steps/certificate.js';
import { commitStep } from '../steps/commit.js';
import { dnsStep } from '../steps/dns.js';
import type { Transaction } from '../steps/hooks.js';
import { clinicName } from '../steps/name.js';
import type { Plan } from './plan.js';

/**
 * A DELETED clinic brought back within its retention (decision 040): its quarantined database
 * and role under their own names again, its name published and certified again, then `finish`
 * (READY and the audit entry, in one transaction). A failure stops the run where it is: the
 * caller puts the clinic back to DELETED, and a new restore runs every step again (each is
 * idempotent).
 */
export function restorePlan<S extends ProvisionState>(
  deps: StepDeps,
  finish: (tx: Transaction, state: S, context: StepContext) => Promise<void>,
): Plan<S> {
  const name = clinicName<S>(deps);
  const database: Step<S> = {
    name: 'create_database',
    async run(state) {
      const restored = await deps.ledger.restoreClinic(state.clinicId);
      await deps.clients.evict(state.clinicId);
      return { note: restored ? `restored ${state.databaseName} from quarantine` : 'nothing in quarantine' };
    },
  };
  return {
    kind: 'RESTORE',
    steps: [
      database,
      dnsStep(deps, { ...name, keep: true }),
      certificateStep(deps, { ...name, keep: true }),
      commitStep<S>(deps, finish),
    ],
    suspendOn: () => true,
  };
}
