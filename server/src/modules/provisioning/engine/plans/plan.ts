import type { ProvisioningRunKind } from '../../../../generated/central/enums.js';
import type { ProvisioningStepName } from '../../step-names.js';
import type { Step } from '../runner.js';

/**
 * A kind of run and its steps, in order. A module contributes one by writing a function that
 * returns a Plan from the engine's steps (engine/steps/) and its own, and hands it to
 * `ProvisioningService.run`; nothing in the engine changes (docs/decisions/043).
 */
export interface Plan<S> {
  kind: ProvisioningRunKind;
  steps: readonly Step<S>[];
  /**
   * When it returns true for a failure, the run stops without undoing anything (FAILED,
   * `suspended`): the caller resumes it later (hybrid registrations, onboardings, deletions).
   */
  suspendOn?: (error: Error, step: ProvisioningStepName) => boolean;
}
