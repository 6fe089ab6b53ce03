/**
 * The provisioning module's public face: other modules import from here only (docs/decisions/043).
 * The engine (engine/: runner, steps, plans) does every lifecycle operation of a clinic as a
 * recorded run; a module adds its own work through a plan's hooks or a plan of its own.
 */
export {
  clinicDatabaseGrants,
  cloneDatabase,
  databaseExists,
  ensureRole,
  grantClinicRole,
  quoteLiteral,
  roleExists,
} from './admin.js';
export { alertServerIdentity } from './alerts.js';
export type { ClinicClientCache } from './clinic-clients.js';
export {
  clinicSubject,
  type ProvisioningEvent,
  type ProvisioningEventStatus,
  type RunSubject,
} from './engine/events.js';
export type { DeletePlanOptions } from './engine/plans/delete.js';
export type { OnboardHooks } from './engine/plans/onboard.js';
export type { Plan } from './engine/plans/plan.js';
export type { RegisterHooks } from './engine/plans/register.js';
export {
  describe,
  RUN_LEASE_MS,
  type RunResult,
  type Step,
  type StepContext,
  type StepResult,
} from './engine/runner.js';
export type { ClinicAdmin, ProvisionState } from './engine/state.js';
export type { Transaction, TransactionHook } from './engine/steps/hooks.js';
export type { NameTarget } from './engine/steps/name.js';
export { ClinicBusyError, ProvisioningFailedError, ServerUnreachableError } from './errors.js';
export {
  type FaultInjector,
  InjectedFault,
  InjectedTakeoverCrash,
  type TakeoverCrashPoint,
} from './faults.js';
export {
  CLINIC_RECORD_COLUMNS,
  type ClinicHealth,
  type ClinicRecord,
  checkClinicDatabaseIntegrity,
  clinicPassword,
  type DbStatus,
  type IntegrityContext,
} from './integrity.js';
export type { Ledger, LedgerEntry, LedgerObjects } from './ledger.js';
export {
  type AuditActor,
  type ClinicsHealthReport,
  ProvisioningService,
  type RepairResult,
} from './service.js';
export { PROVISIONING_STEP_NAMES, type ProvisioningStepName } from './step-names.js';
export type { WarmPool } from './warm-pool.js';
