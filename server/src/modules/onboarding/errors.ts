/** Expected failures of the onboarding service (its limits throw the shared RateLimitedError). */
import { ConflictError, OnrampError } from '../../errors.js';
import type { ProvisioningStepName } from '../provisioning/index.js';

/** The onboarding's state does not allow the operation (e.g. complete before provision). */
export class OnboardingConflictError extends ConflictError {
  constructor(message: string) {
    super(message);
    this.name = 'OnboardingConflictError';
  }
}

/**
 * DNS or the certificate failed. What was done is kept (never undone) and the next
 * provisioning call resumes from the failed step.
 */
export class OnboardingProvisioningFailedError extends OnrampError {
  readonly code = 'PROVISIONING_FAILED' as const;
  constructor(
    readonly step: ProvisioningStepName,
    readonly runId: string,
  ) {
    super(`Provisioning stopped at step ${step}; what was done is kept. Call provision again to resume.`);
    this.name = 'OnboardingProvisioningFailedError';
  }
}

/**
 * The application's key was revoked while its provision ran (decision 091): the commit activates
 * nothing, and provision answers NOT_FOUND. Never leaves the module.
 */
export class RevokedDuringProvisionError extends Error {
  constructor() {
    super("The application's master key was revoked during the provision");
    this.name = 'RevokedDuringProvisionError';
  }
}
