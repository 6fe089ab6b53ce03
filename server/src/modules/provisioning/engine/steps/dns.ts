import { clinicFqdn } from '../../../dns/provider.js';
import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/** The name a dns or ssl step works on, and how its subject remembers that it is done. */
export interface NameTarget<S> {
  /** `<subdomain>.<BASE_DOMAIN>`; undefined when the subject is gone. */
  fqdn(state: S): Promise<string | undefined>;
  /** Done by an earlier run of the subject: the step is SKIPPED. */
  done?(state: S): Promise<boolean>;
  /** Records on the subject that the step is done. */
  markDone?(state: S): Promise<void>;
  /** A failed run keeps what this step did (an onboarding resumes): no undo. */
  keep?: boolean;
}

/** The clinic's name, read back from its row: the subdomain step may have changed it. */
export function clinicName<S extends ProvisionState>(
  deps: Pick<StepDeps, 'prisma' | 'baseDomain'>,
): NameTarget<S> {
  return {
    async fqdn(state) {
      const clinic = await deps.prisma.clinic.findUnique({
        where: { id: state.clinicId },
        select: { subdomain: true },
      });
      return clinic ? clinicFqdn(clinic.subdomain, deps.baseDomain) : undefined;
    },
  };
}

/** Points the subject's name at the ingress (DNS_PROVIDER); undone by unpublishing it. */
export function dnsStep<S>(deps: Pick<StepDeps, 'dns'>, target: NameTarget<S>): Step<S> {
  const { dns } = deps;
  return {
    name: 'dns',
    async run(state) {
      if (!dns) return { skipped: 'no DNS provider here' };
      if (await target.done?.(state)) return { skipped: 'already configured' };
      const fqdn = await target.fqdn(state);
      if (!fqdn) throw new Error('the record of what the name belongs to is missing');
      const records = await dns.publishSubdomain(fqdn);
      await target.markDone?.(state);
      return { note: `${fqdn} → ${records.map((record) => `${record.type} ${record.value}`).join(', ')}` };
    },
    ...(target.keep
      ? {}
      : {
          async undo(state: S) {
            const fqdn = await target.fqdn(state);
            if (fqdn) await dns?.unpublishSubdomain(fqdn);
          },
        }),
  };
}

/** Removes the subject's name from DNS (a deletion's step; idempotent). */
export function unpublishStep<S>(deps: Pick<StepDeps, 'dns'>, target: NameTarget<S>): Step<S> {
  return {
    name: 'dns',
    async run(state) {
      if (!deps.dns) return { skipped: 'no DNS provider here' };
      const fqdn = await target.fqdn(state);
      if (fqdn) await deps.dns.unpublishSubdomain(fqdn);
      return fqdn ? { note: `${fqdn} unpublished` } : { skipped: 'no name' };
    },
  };
}
