import { transaction } from '../../../../db/raw.js';
import { Prisma } from '../../../../generated/central/client.js';
import type { Step, StepContext } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';
import type { Transaction, TransactionHook } from './hooks.js';

/**
 * The point of no return: `apply` in one central transaction, with the step's record, so a run
 * is never READY-and-unrecorded nor recorded-and-not-READY (docs/decisions/063).
 */
export function commitStep<S>(
  deps: Pick<StepDeps, 'prisma'>,
  apply: (tx: Transaction, state: S, context: StepContext) => Promise<void>,
  undo?: (state: S) => Promise<void>,
  prepare?: (state: S) => Promise<void>,
): Step<S> {
  return {
    name: 'commit',
    async run(state, context) {
      await prepare?.(state);
      await transaction(deps.prisma, async (tx) => {
        await apply(tx, state, context);
        await context.record(tx);
      });
      return undefined;
    },
    ...(undo ? { undo } : {}),
  };
}

/**
 * A clinic's commit: READY, its database and role settled in the ledger (no sweep touches them
 * again; one statement), and what `hook` adds (a registration's audit entry and verification
 * e-mail), together.
 */
export function clinicCommitStep<S extends ProvisionState>(
  deps: Pick<StepDeps, 'prisma' | 'ledger'>,
  hook: TransactionHook<S> = {},
): Step<S> {
  return commitStep<S>(
    deps,
    async (tx, state) => {
      await tx.execute(Prisma.sql`
        WITH ready AS (
          UPDATE clinics SET status = 'READY', updated_at = now() WHERE id = ${state.clinicId}::uuid)
        ${deps.ledger.settleSql(state.clinicId)}`);
      await hook.run?.(tx, state);
    },
    async (state) => {
      await deps.prisma.clinic.updateMany({ where: { id: state.clinicId }, data: { status: 'FAILED' } });
    },
    hook.prepare?.bind(hook),
  );
}
