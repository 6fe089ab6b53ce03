import type { Step } from '../runner.js';
import { clinicRecord, type ProvisionState, type StepDeps } from '../state.js';
import type { TransactionHook } from './hooks.js';

/**
 * The company and its PROVISIONING clinic, in one transaction with what `hook` adds (a
 * registration's admin user). Undone by deleting the company, which cascades to the clinic, its
 * users and their tokens. The step's record is written in the same transaction.
 */
export function centralRecordsStep<S extends ProvisionState>(
  deps: Pick<StepDeps, 'prisma'>,
  hook: TransactionHook<S> = {},
): Step<S> {
  return {
    name: 'central_records',
    async run(state, context) {
      await deps.prisma.$transaction(async (tx) => {
        const company = await tx.company.create({ data: { name: state.companyName } });
        await tx.clinic.create({ data: { ...clinicRecord(state), companyId: company.id } });
        await hook.run?.(tx, state);
        await context.record(tx);
      });
      state.createdInRun = true;
      return undefined;
    },
    async undo(state) {
      await deps.prisma.$transaction(async (tx) => {
        await hook.undo?.(tx, state);
        const clinic = await tx.clinic.findUnique({
          where: { id: state.clinicId },
          select: { companyId: true },
        });
        if (clinic) await tx.company.delete({ where: { id: clinic.companyId } });
      });
    },
  };
}
