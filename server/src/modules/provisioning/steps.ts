/**
 * The steps' former home, for code written against it: each step is now a file of
 * engine/steps/, and a plan of engine/plans/ lists them per kind of run (docs/decisions/043).
 */
export {
  type ClinicAdmin,
  clinicRecord,
  defaultSubdomain,
  ledgerObjects,
  newProvisionState,
  type ProvisionState,
  type StepDeps,
} from './engine/state.js';
export { centralRecordsStep } from './engine/steps/central-records.js';
export { clinicCommitStep as commitStep } from './engine/steps/commit.js';
export { createDatabaseStep } from './engine/steps/create-database.js';
export { migrateDatabaseStep } from './engine/steps/migrate-database.js';
export { seedProviderStep } from './engine/steps/seed-provider.js';
export { verifyDatabaseStep } from './engine/steps/verify-database.js';
