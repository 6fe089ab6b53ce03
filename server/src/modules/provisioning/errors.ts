import { ConflictError, OnrampError } from '../../errors.js';
import type { ProvisioningStepName } from './step-names.js';

/** A provisioning run failed and was rolled back: nothing it created remains. */
export class ProvisioningFailedError extends OnrampError {
  readonly code = 'PROVISIONING_FAILED' as const;
  constructor(
    readonly step: ProvisioningStepName,
    readonly runId: string,
    /** Why, when the caller may be told (never an address: registration is public). */
    reason?: string,
  ) {
    super(
      `Provisioning failed at step ${step} and was rolled back; nothing was kept.${reason ? ` ${reason}` : ''} Please try again.`,
    );
    this.name = 'ProvisioningFailedError';
  }
}

/** The operation conflicts with the clinic's current state (e.g. still provisioning). */
export class ClinicBusyError extends ConflictError {
  override name = 'ClinicBusyError';
}

/** The clinic's database server is recorded but no configured URL reaches it: nothing is changed. */
export class ServerUnreachableError extends ConflictError {
  override name = 'ServerUnreachableError';
}
