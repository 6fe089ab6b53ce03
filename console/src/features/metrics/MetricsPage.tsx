import { useQuery } from 'urql';
import { useDebounced } from '../../app/hooks';
import { graphql } from '../../gql';
import { formatDuration } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
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
      status
      startedAt
      durationMs
    }
  }
`);

export function MetricsPage() {
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: MetricsQuery,
    requestPolicy: 'cache-and-network',
  });
  // Live: a run that ends changes the numbers.
  const refetch = useDebounced(() => reexecute({ requestPolicy: 'network-only' }), 1_000);
  useProvisioningEvents((event) => {
    if (event.status === 'FAILED' || (event.step === 'commit' && event.status === 'SUCCEEDED')) refetch();
  });

  const metrics = data?.provisioningMetrics;
  const runs = (data?.provisioningRuns ?? [])
    .filter((run) => run.status !== 'RUNNING')
    .map((run) => ({ ...run, ok: run.status === 'SUCCEEDED' }));

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Metrics</h1>
        <button
          type="button"
          className="button"
          onClick={() => reexecute({ requestPolicy: 'network-only' })}
          disabled={fetching}
        >
          Refresh
        </button>
      </div>
      {error && <ErrorNotice error={error} onRetry={() => reexecute({ requestPolicy: 'network-only' })} />}
      {!data && fetching && <Loading />}
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
