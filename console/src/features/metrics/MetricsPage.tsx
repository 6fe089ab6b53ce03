import { useDebounced, useResilientQuery } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { formatDuration } from '../../ui/format';
import { Empty, ErrorNotice, Loading, StaleData } from '../../ui/states';
import { DateTime } from '../../ui/text';
import { useProvisioningEvents } from '../live/ProvisioningFeed';
import { DurationChart } from './DurationChart';

const MetricsQuery = graphql(`
  query MetricsPage_MetricsQuery {
    provisioningMetrics {
      successes
      failures
      retries
      p50Ms
      p95Ms
    }
    provisioningRuns(kind: REGISTER, first: 200) {
      id
      clinicName
      status
      error
      startedAt
      durationMs
    }
  }
`);

export function MetricsPage() {
  const { data, fetching, error, stale, receivedAt, refetch } = useResilientQuery({
    query: MetricsQuery,
    requestPolicy: 'cache-and-network',
  });
  // Live: a run that ends changes the numbers.
  const refresh = useDebounced(refetch, 1_000);
  useProvisioningEvents((event) => {
    if (event.status === 'FAILED' || (event.step === 'commit' && event.status === 'SUCCEEDED')) refresh();
  });

  const metrics = data?.provisioningMetrics;
  const runs = (data?.provisioningRuns ?? [])
    .filter((run) => run.status !== 'RUNNING')
    .map((run) => ({ ...run, ok: run.status === 'SUCCEEDED' }));
  const failures = runs.filter((run) => !run.ok).slice(0, 10);

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Metrics</h1>
        <button type="button" className="button" onClick={refetch} disabled={fetching}>
          Refresh
        </button>
      </div>
      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading />}
      <StaleData stale={stale} receivedAt={receivedAt}>
        {metrics && (
          <section className="totals" aria-label="Provisioning totals">
            <Stat label="Successes" value={String(metrics.successes)} />
            <Stat
              label="Failures"
              value={String(metrics.failures)}
              tone={metrics.failures > 0 ? 'bad' : undefined}
            />
            <Stat label="Retries" value={String(metrics.retries)} />
            <Stat label="p50 registration" value={formatDuration(metrics.p50Ms)} />
            <Stat label="p95 registration" value={formatDuration(metrics.p95Ms)} />
          </section>
        )}
        {data && (
          <section className="card" aria-labelledby="chart-title">
            <h2 id="chart-title">Registrations over time</h2>
            {runs.length === 0 ? (
              <Empty>No registration has finished yet.</Empty>
            ) : (
              <DurationChart runs={runs} p50={metrics?.p50Ms ?? null} p95={metrics?.p95Ms ?? null} />
            )}
          </section>
        )}
        {failures.length > 0 && (
          <section className="card" aria-labelledby="failures-title">
            <h2 id="failures-title">Recent failed registrations</h2>
            <table className="data-table">
              <caption className="visually-hidden">The last failed registrations and their errors</caption>
              <thead>
                <tr>
                  <th scope="col">Clinic</th>
                  <th scope="col">Started</th>
                  <th scope="col">Error</th>
                </tr>
              </thead>
              <tbody>
                {failures.map((run) => (
                  <tr key={run.id} data-run-id={run.id}>
                    <th scope="row" data-label="Clinic">
                      <Link href={`/runs/${run.id}`}>{run.clinicName ?? 'Unnamed clinic'}</Link>
                    </th>
                    <td data-label="Started">
                      <DateTime iso={run.startedAt} />
                    </td>
                    <td data-label="Error" className="step-message-error">
                      {run.error ?? '—'}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        )}
      </StaleData>
    </>
  );
}

function Stat({ label, value, tone }: { label: string; value: string; tone?: 'bad' }) {
  return (
    <div className={tone ? `total total-${tone}` : 'total'}>
      <span className="total-value">{value}</span>
      <span className="total-label">{label}</span>
    </div>
  );
}
