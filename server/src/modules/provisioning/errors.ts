import { ConflictError, OnrampError } from '../../errors.js';
import type { ProvisioningStepName } from './step-names.js';

/**
 * A provisioning run failed and was rolled back. When its undo could not finish (a server that
 * vanished: docs/decisions/095, 097), what remains is left to the ledger's sweep, and the message
 * says so rather than "nothing was kept".
 */
export class ProvisioningFailedError extends OnrampError {
  readonly code = 'PROVISIONING_FAILED' as const;
  constructor(
    readonly step: ProvisioningStepName,
    readonly runId: string,
    /** Whether every undo finished (the run's `rolledBack`). */
    rolledBack: boolean,
    /** Why, when the caller may be told (never an address: registration is public). */
    reason?: string,
  ) {
    const undone = rolledBack
      ? 'was rolled back; nothing was kept.'
      : 'was rolled back only in part; what could not be removed yet is removed automatically later.';
    super(`Provisioning failed at step ${step} and ${undone}${reason ? ` ${reason}` : ''} Please try again.`);
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
