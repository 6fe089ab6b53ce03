import type { DbStatus, ProvisioningStepStatus } from '../gql/graphql';

export const DB_STATUSES: DbStatus[] = ['HEALTHY', 'DEGRADED', 'UNHEALTHY', 'MISSING', 'PROVISIONING'];

const DB_STATUS_HINT: Record<DbStatus, string> = {
  HEALTHY: 'Exists, reachable by its role, every table present, current schema',
  DEGRADED: 'Reachable, but tables, grants or migrations are missing',
  UNHEALTHY: 'Exists but cannot be reached by its role',
  MISSING: 'The database does not exist',
  PROVISIONING: 'Still being created; not checked',
};

/** Colour and word: the status reads the same without colour. */
export function DbStatusBadge({ status }: { status: DbStatus }) {
  return (
    <span className={`badge badge-${status.toLowerCase()}`} title={DB_STATUS_HINT[status]}>
      {status}
    </span>
  );
}

const STEP_SYMBOL: Record<ProvisioningStepStatus, string> = {
  STARTED: '…',
  SUCCEEDED: '✓',
  FAILED: '✗',
  ROLLED_BACK: '↺',
  SKIPPED: '–',
};

export function StepStatusBadge({ status }: { status: ProvisioningStepStatus }) {
  return (
    <span className={`step-status step-${status.toLowerCase()}`}>
      <span aria-hidden="true">{STEP_SYMBOL[status]}</span> {status.replace('_', ' ')}
    </span>
  );
}

export function RunStatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-run-${status.toLowerCase()}`}>{status.replace('_', ' ')}</span>;
}
