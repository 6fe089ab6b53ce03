/** Provisioning steps, in run order (CONTRACT.md section 4). Names appear in events and FAULT_INJECTION. */
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
] as const;

export type ProvisioningStepName = (typeof PROVISIONING_STEP_NAMES)[number];
