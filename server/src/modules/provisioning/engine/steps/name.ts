/**
 * What the dns and ssl steps share: the clinic host they work on (`<subdomain>.<BASE_DOMAIN>`,
 * a {@link NameTarget}) and the shape of a step that puts something in place for that host, or
 * takes it away. dns.ts and certificate.ts say only what their service does to the host.
 */
import { clinicFqdn } from '../../../dns/provider.js';
import type { ProvisioningStepName } from '../../step-names.js';
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

/**
 * The clinic's name: the one the run's subdomain step reserved, or else read back from its row
 * (a run without that step, e.g. a deletion or a restore).
 */
export function clinicName<S extends ProvisionState>(
  deps: Pick<StepDeps, 'prisma' | 'baseDomain'>,
): NameTarget<S> {
  return {
    async fqdn(state) {
      if (state.subdomain) return clinicFqdn(state.subdomain, deps.baseDomain);
      const clinic = await deps.prisma.clinic.findUnique({
        where: { id: state.clinicId },
        select: { subdomain: true },
      });
      return clinic ? clinicFqdn(clinic.subdomain, deps.baseDomain) : undefined;
    },
  };
}

/** What one service (DNS, certificates) does to a host. */
export interface HostService {
  /** Puts the host's record or certificate in place; returns the step's note. */
  put(fqdn: string): Promise<string>;
  /** Takes it away; idempotent. */
  take(fqdn: string): Promise<void>;
}

/** The step's name and the notes of its SKIPPED and removal outcomes. */
export interface HostStepNames {
  name: ProvisioningStepName;
  /** Why nothing is done: the service is not configured here. */
  absent: string;
  /** Why nothing is done: an earlier run of the subject did it. */
  already: string;
  /** The note of a removal. */
  taken(fqdn: string): string;
}

/** One service's part of a subject's host: the step's names, the service (absent here: SKIPPED), the host. */
export interface HostPart<S> {
  names: HostStepNames;
  service: HostService | undefined;
  target: NameTarget<S>;
}

/** Puts the service's part in place for the target's host; undone by taking it away. */
export function putHostStep<S>({ names, service, target }: HostPart<S>): Step<S> {
  return {
    name: names.name,
    async run(state) {
      if (!service) return { skipped: names.absent };
      if (await target.done?.(state)) return { skipped: names.already };
      const fqdn = await target.fqdn(state);
      if (!fqdn) throw new Error('the record of what the name belongs to is missing');
      const note = await service.put(fqdn);
      await target.markDone?.(state);
      return { note };
    },
    ...(target.keep
      ? {}
      : {
          async undo(state: S) {
            const fqdn = await target.fqdn(state);
            if (fqdn) await service?.take(fqdn);
          },
        }),
  };
}

/** Takes the service's part away from the target's host (a deletion's step; idempotent). */
export function takeHostStep<S>({ names, service, target }: HostPart<S>): Step<S> {
  return {
    name: names.name,
    async run(state) {
      if (!service) return { skipped: names.absent };
      const fqdn = await target.fqdn(state);
      if (fqdn) await service.take(fqdn);
      return fqdn ? { note: names.taken(fqdn) } : { skipped: 'no name' };
    },
  };
}
