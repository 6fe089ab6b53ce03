import { useResilientQuery } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { Empty, ErrorNotice, Loading, StaleData } from '../../ui/states';
import { ProvisioningTimeline } from '../clinics/ProvisioningTimeline';
import { useProvisioningEvents } from './ProvisioningFeed';

const RunQuery = graphql(`
  query RunPage_RunQuery($id: ID!) {
    provisioningRun(id: $id) {
      id
      clinicId
      clinicName
      ...ProvisioningTimeline_RunFields
    }
  }
`);

const ClinicExistsQuery = graphql(`
  query RunPage_ClinicQuery($id: ID!) {
    clinic(id: $id) {
      id
      name
    }
  }
`);

/** One provisioning run: its steps, their timings and errors; reachable from the chart and the feed. */
export function RunPage({ id }: { id: string }) {
  const run = useResilientQuery({ query: RunQuery, variables: { id }, requestPolicy: 'cache-and-network' });
  const found = run.data?.provisioningRun;
  const clinic = useResilientQuery({
    query: ClinicExistsQuery,
    variables: { id: found?.clinicId ?? '' },
    // An onboarding's run carries the onboarding's id, not a clinic's.
    pause: !found || found.kind === 'ONBOARDING',
  });
  useProvisioningEvents((event) => {
    if (event.runId === id) run.refetch();
  });

  if (run.error && !run.data) return <ErrorNotice error={run.error} onRetry={run.refetch} />;
  if (!run.data) return <Loading label="Reading the run…" />;
  if (!found)
    return (
      <>
        <h1 tabIndex={-1}>Run not found</h1>
        <Empty>
          No provisioning run has this id. <Link href="/live">Back to the live feed</Link>
        </Empty>
      </>
    );
  const existing = clinic.data?.clinic;
  return (
    <StaleData stale={run.stale} receivedAt={run.receivedAt}>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/live">Live feed</Link> <span aria-hidden="true">/</span>
      </nav>
      <div className="page-header">
        <h1 tabIndex={-1}>{found.clinicName ?? 'Provisioning run'}</h1>
        {found.kind === 'ONBOARDING' ? (
          <Link href="/onboardings">Onboardings</Link>
        ) : existing ? (
          <Link href={`/clinics/${existing.id}`}>Open the clinic</Link>
        ) : (
          clinic.data && <span className="muted">The clinic no longer exists.</span>
        )}
      </div>
      <ProvisioningTimeline runs={[found]} />
    </StaleData>
  );
}
