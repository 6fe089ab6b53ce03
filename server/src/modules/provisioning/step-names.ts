import { MOVE_STEP_NAMES } from '../moves/step-names.js';

/** Provisioning steps, in run order (README, "Architecture"; docs/decisions/005). Names appear in events and FAULT_INJECTION. */
export const PROVISIONING_STEP_NAMES = [
  'central_records',
  'subdomain',
  'create_database',
  'migrate_database',
  'verify_database',
  'seed_provider',
  'dns',
  'ssl',
  'commit',
  'verification_email',
  // A MOVE run's (modules/moves).
  ...MOVE_STEP_NAMES,
] as const;

export type ProvisioningStepName = (typeof PROVISIONING_STEP_NAMES)[number];
