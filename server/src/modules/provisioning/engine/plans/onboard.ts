import type { StepDeps } from '../state.js';
import { certificateStep } from '../steps/certificate.js';
import { commitStep } from '../steps/commit.js';
import { dnsStep } from '../steps/dns.js';
import type { Transaction } from '../steps/hooks.js';
import type { NameTarget } from '../steps/name.js';
import type { Plan } from './plan.js';

/** What the onboarding module adds: where it records each step, and its commit. */
export interface OnboardHooks<S> {
  dns: NameTarget<S>;
  certificate: NameTarget<S>;
  commit(tx: Transaction, state: S): Promise<void>;
}

/**
 * An onboarding's provisioning: dns, ssl, commit. It never rolls back: DNS records and a
 * certificate are harmless to keep, and a retry resumes from the failed step. The onboarding
 * module releases them when nothing can use them any more (docs/decisions/096).
 */
export function onboardPlan<S>(
  deps: Pick<StepDeps, 'prisma' | 'dns' | 'certificates'>,
  hooks: OnboardHooks<S>,
): Plan<S> {
  return {
    kind: 'ONBOARDING',
    steps: [
      dnsStep(deps, { ...hooks.dns, keep: true }),
      certificateStep(deps, { ...hooks.certificate, keep: true }),
      commitStep(deps, hooks.commit),
    ],
    suspendOn: () => true,
  };
}
