import { transaction } from '../../../../db/raw.js';
import type { Step, StepContext } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';
import { revokeStep } from '../steps/certificate.js';
import { quarantineDatabaseStep } from '../steps/create-database.js';
import { unpublishStep } from '../steps/dns.js';
import type { Transaction } from '../steps/hooks.js';
import { clinicName } from '../steps/name.js';
import type { Plan } from './plan.js';

export interface DeletePlanOptions<S> {
  /** Why, on the quarantined objects' ledger entries. */
  reason: string;
  /** How long the quarantined database and role are kept before the purge. */
  retentionSeconds: number;
  /**
   * The last step, in one central transaction: what becomes of the clinic's rows (DELETED and
   * audited for deleteClinic; removed, for an expired registration), as `commit` or, when the
   * central records go, `central_records`.
   */
  finish: {
    step: 'commit' | 'central_records';
    apply(tx: Transaction, state: S, context: StepContext): Promise<void>;
    note?: string;
  };
}

/**
 * A clinic going away, its registration undone in reverse: certificate revoked, name
 * unpublished (a deleted clinic stops resolving first), database and role quarantined, never
 * dropped (decision 040), then `finish`. Every step is idempotent: a failed run is suspended and
 * the next attempt runs them all again.
 */
export function deletePlan<S extends ProvisionState>(deps: StepDeps, options: DeletePlanOptions<S>): Plan<S> {
  const name = clinicName<S>(deps);
  const { finish } = options;
  const last: Step<S> = {
    name: finish.step,
    async run(state, context) {
      await transaction(deps.prisma, (tx) => finish.apply(tx, state, context));
      return finish.note ? { note: finish.note } : undefined;
    },
  };
  return {
    kind: 'DELETE',
    steps: [
      revokeStep(deps, name),
      unpublishStep(deps, name),
      quarantineDatabaseStep<S>(deps, options.reason, options.retentionSeconds),
      last,
    ],
    suspendOn: () => true,
  };
}
