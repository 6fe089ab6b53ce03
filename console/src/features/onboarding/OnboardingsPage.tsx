import { useId } from 'react';
import { useQuery } from 'urql';
import { Link, navigate, useLocation } from '../../app/router';
import { graphql } from '../../gql';
import type { InfrastructureStatus, OnboardingStatus } from '../../gql/graphql';
import { formatDateTime, shortId } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';

const ApplicationNamesQuery = graphql(`
  query OnboardingsPage_ApplicationNamesQuery {
    applications {
      id
      name
    }
  }
`);

const OnboardingsQuery = graphql(`
  query OnboardingsPage_OnboardingsQuery($applicationId: ID, $status: OnboardingStatus, $first: Int) {
    applicationOnboardings(applicationId: $applicationId, status: $status, first: $first) {
      uuid
      applicationId
      organizationName
      email
      status
      subdomain
      fullDomain
      tenantId
      completedAt
      metadata {
        createdAt
        updatedAt
        dnsConfigured
        sslConfigured
        infrastructureStatus
        apiKeyGenerated
        provisioningAttempts
      }
    }
  }
`);

const STATUSES: OnboardingStatus[] = ['PENDING', 'ACTIVATED', 'COMPLETED'];
const LIMIT = 200;

const STATUS_HINT: Record<OnboardingStatus, string> = {
  PENDING: 'Started; not provisioned yet',
  ACTIVATED: 'DNS and certificate in place',
  COMPLETED: 'The application reported its tenant ready',
};

const INFRASTRUCTURE_CLASS: Record<InfrastructureStatus, string> = {
  PENDING: 'badge',
  PARTIAL: 'badge badge-degraded',
  READY: 'badge badge-healthy',
  FAILED: 'badge badge-missing',
};

/** Yes/no that reads the same without colour. */
function Flag({ on }: { on: boolean }) {
  return on ? <span className="flag-on">✓ yes</span> : <span className="flag-off">✗ no</span>;
}

export function OnboardingsPage() {
  const location = useLocation();
  const applicationId = location.searchParams.get('application') ?? '';
  const rawStatus = location.searchParams.get('status') ?? '';
  const status = STATUSES.includes(rawStatus as OnboardingStatus) ? (rawStatus as OnboardingStatus) : null;
  const ids = { application: useId(), status: useId() };

  const [apps] = useQuery({ query: ApplicationNamesQuery, requestPolicy: 'cache-and-network' });
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: OnboardingsQuery,
    variables: { applicationId: applicationId || null, status, first: LIMIT },
    requestPolicy: 'cache-and-network',
  });
  const refetch = () => reexecute({ requestPolicy: 'network-only' });

  const names = new Map((apps.data?.applications ?? []).map((app) => [app.id, app.name]));
  const current = applicationId ? names.get(applicationId) : undefined;
  const onboardings = data?.applicationOnboardings ?? [];

  const setFilter = (key: 'application' | 'status', value: string) => {
    const params = new URLSearchParams(location.search);
    if (value) params.set(key, value);
    else params.delete(key);
    const query = params.toString();
    navigate(`/onboardings${query ? `?${query}` : ''}`, { replace: true });
  };

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Onboardings{current ? ` of ${current}` : ''}</h1>
        <button type="button" className="button" onClick={refetch} disabled={fetching}>
          {fetching ? 'Refreshing…' : 'Refresh'}
        </button>
      </div>

      <form className="filters" onSubmit={(event) => event.preventDefault()}>
        <div className="field">
          <label htmlFor={ids.application}>Application</label>
          <select
            id={ids.application}
            value={applicationId}
            onChange={(event) => setFilter('application', event.target.value)}
          >
            <option value="">All applications</option>
            {(apps.data?.applications ?? []).map((app) => (
              <option key={app.id} value={app.id}>
                {app.name}
              </option>
            ))}
            {applicationId && !names.has(applicationId) && (
              <option value={applicationId}>{apps.data ? 'Unknown application' : 'Loading…'}</option>
            )}
          </select>
        </div>
        <div className="field">
          <label htmlFor={ids.status}>Status</label>
          <select
            id={ids.status}
            value={status ?? ''}
            onChange={(event) => setFilter('status', event.target.value)}
          >
            <option value="">Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.toLowerCase()}
              </option>
            ))}
          </select>
        </div>
      </form>

      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading label="Loading onboardings…" />}
      {data && onboardings.length === 0 && (
        <Empty>
          {applicationId || status
            ? 'No onboarding matches these filters.'
            : 'No onboardings yet. They appear here once an application calls /api/v1/onboarding/start.'}{' '}
          <Link href="/applications">Manage applications</Link>
        </Empty>
      )}
      {onboardings.length > 0 && (
        <div className="table-wrap">
          <table className="data-table onboardings-table">
            <caption className="visually-hidden">Onboardings, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Organisation</th>
                <th scope="col">Application</th>
                <th scope="col">Status</th>
                <th scope="col">Domain</th>
                <th scope="col">Infrastructure</th>
                <th scope="col">Tenant</th>
                <th scope="col">Created / updated</th>
              </tr>
            </thead>
            <tbody>
              {onboardings.map((o) => (
                <tr key={o.uuid} data-onboarding-id={o.uuid}>
                  <th scope="row" data-label="Organisation">
                    <div>
                      {o.organizationName ?? <span className="muted">—</span>}
                      <div className="muted small">{o.email}</div>
                      <code className="muted small" title={`Onboarding ${o.uuid}`}>
                        {shortId(o.uuid)}
                      </code>
                    </div>
                  </th>
                  <td data-label="Application">
                    <Link href={`/onboardings?application=${o.applicationId}`}>
                      {names.get(o.applicationId) ?? shortId(o.applicationId)}
                    </Link>
                  </td>
                  <td data-label="Status">
                    <span
                      className={`badge badge-onboarding-${o.status.toLowerCase()}`}
                      title={STATUS_HINT[o.status]}
                      data-testid="onboarding-status"
                    >
                      {o.status}
                    </span>
                  </td>
                  <td data-label="Domain">
                    <div>
                      <code data-testid="onboarding-subdomain">{o.subdomain}</code>
                      <div className="muted small">{o.fullDomain}</div>
                    </div>
                  </td>
                  <td data-label="Infrastructure">
                    <div>
                      <span className={INFRASTRUCTURE_CLASS[o.metadata.infrastructureStatus]}>
                        {o.metadata.infrastructureStatus}
                      </span>
                      <dl className="kv">
                        <div>
                          <dt>DNS</dt>
                          <dd>
                            <Flag on={o.metadata.dnsConfigured} />
                          </dd>
                        </div>
                        <div>
                          <dt>SSL</dt>
                          <dd>
                            <Flag on={o.metadata.sslConfigured} />
                          </dd>
                        </div>
                        <div>
                          <dt>API key</dt>
                          <dd>
                            <Flag on={o.metadata.apiKeyGenerated} />
                          </dd>
                        </div>
                        <div>
                          <dt>Attempts</dt>
                          <dd>{o.metadata.provisioningAttempts}</dd>
                        </div>
                      </dl>
                    </div>
                  </td>
                  <td data-label="Tenant">
                    {o.tenantId ? (
                      <div>
                        <code>{o.tenantId}</code>
                        {o.completedAt && (
                          <div className="muted small">
                            completed <time dateTime={o.completedAt}>{formatDateTime(o.completedAt)}</time>
                          </div>
                        )}
                      </div>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td data-label="Created / updated">
                    <div>
                      <time dateTime={o.metadata.createdAt}>{formatDateTime(o.metadata.createdAt)}</time>
                      <div className="muted small">
                        updated{' '}
                        <time dateTime={o.metadata.updatedAt}>{formatDateTime(o.metadata.updatedAt)}</time>
                      </div>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {onboardings.length === LIMIT && (
        <p className="hint">Showing the newest {LIMIT}; filter by application or status to see others.</p>
      )}
    </>
  );
}
