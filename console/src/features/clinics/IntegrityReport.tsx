import { graphql } from '../../gql';
import type { IntegrityReport_HealthFieldsFragment } from '../../gql/graphql';
import { DbStatusBadge } from '../../ui/badges';
import { formatDateTime } from '../../ui/format';

export const HealthFieldsFragment = graphql(`
  fragment IntegrityReport_HealthFields on ClinicHealth {
    clinicId
    dbStatus
    schemaVersion
    tablesCount
    expectedTables
    missingTables
    errors
    lastCheck
    server
    serverReachable
  }
`);

export type Health = IntegrityReport_HealthFieldsFragment;

/** What the last check of a clinic database found. */
export function IntegrityReport({ health, compact = false }: { health: Health; compact?: boolean }) {
  return (
    <div className={compact ? 'integrity integrity-compact' : 'integrity'}>
      {!health.serverReachable && (
        <p className="notice notice-error" role="alert" data-testid="server-unreachable">
          <strong>Database server {health.server} is unreachable.</strong> Onramp reports it and changes
          nothing on it: its clinics' databases are not taken for missing, and nothing is repaired or
          quarantined until a configured URL reaches it again.
        </p>
      )}
      <dl className="facts">
        <div>
          <dt>Database</dt>
          <dd data-testid="clinic-db-status">
            <DbStatusBadge status={health.dbStatus} />
          </dd>
        </div>
        <div>
          <dt>Tables</dt>
          <dd>
            {health.tablesCount} of {health.expectedTables}
          </dd>
        </div>
        <div>
          <dt>Schema version</dt>
          <dd>{health.schemaVersion ?? '—'}</dd>
        </div>
        {!compact && (
          <div>
            <dt>Checked</dt>
            <dd>
              <time dateTime={health.lastCheck}>{formatDateTime(health.lastCheck)}</time>
            </dd>
          </div>
        )}
      </dl>
      {health.missingTables.length > 0 && (
        <div className="integrity-list">
          <h3>Missing tables</h3>
          <ul>
            {health.missingTables.map((table) => (
              <li key={table}>
                <code>{table}</code>
              </li>
            ))}
          </ul>
        </div>
      )}
      {health.errors.length > 0 && (
        <div className="integrity-list">
          <h3>Errors</h3>
          <ul>
            {health.errors.map((error) => (
              <li key={error}>{error}</li>
            ))}
          </ul>
        </div>
      )}
      {!compact && health.missingTables.length === 0 && health.errors.length === 0 && (
        <p className="muted">No missing tables and no errors.</p>
      )}
    </div>
  );
}
