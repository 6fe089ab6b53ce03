import { transaction } from '../../../../db/raw.js';
import { Prisma } from '../../../../generated/central/client.js';
import { clinicSubdomain, preferredSubdomain, reserveSubdomain } from '../../../subdomains/allocator.js';
import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/**
 * Replaces the provisional `name-1a2b3c4d` subdomain with one from the shared allocator
 * (modules/subdomains): `name`, or `name-2`… when taken by a clinic or an onboarding. A re-run
 * (a resumed registration) keeps the name reserved the first time; a run that created the clinic
 * has none to look for. Recorded in its transaction.
 */
export function subdomainStep<S extends ProvisionState>(deps: Pick<StepDeps, 'prisma'>): Step<S> {
  return {
    name: 'subdomain',
    async run(state, context) {
      const subdomain = await transaction(deps.prisma, async (tx) => {
        const name =
          (state.createdInRun ? null : await clinicSubdomain(tx, state.clinicId)) ??
          (await reserveSubdomain(tx, preferredSubdomain(state.clinicName), { clinicId: state.clinicId }));
        await tx.execute(
          Prisma.sql`UPDATE clinics SET subdomain = ${name}::text, updated_at = now() WHERE id = ${state.clinicId}::uuid`,
        );
        await context.record(tx);
        return name;
      });
      state.subdomain = subdomain;
      return { note: `reserved ${subdomain}` };
    },
    // No undo of its own: the reservation belongs to the clinic row and goes with it
    // (central_records' undo, the purge); a FAILED clinic keeps its name for a retry.
  };
}
