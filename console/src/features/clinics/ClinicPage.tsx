import { useState } from 'react';
import { useQuery } from 'urql';
import { useDebounced, useSubscriptionEvents } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { formatDateTime } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
import { useProvisioningEvents } from '../live/ProvisioningFeed';
import { ClinicActions } from './ClinicActions';
import { type Health, IntegrityReport } from './IntegrityReport';
import { ProvisioningTimeline } from './ProvisioningTimeline';

const ClinicQuery = graphql(`
  query ClinicPage_ClinicQuery($id: ID!) {
    clinic(id: $id) {
      id
      name
      country
      subdomain
      status
      createdAt
      databaseName
      databaseServer
      schemaVersion
      health {
        ...IntegrityReport_HealthFields
      }
    }
    provisioningRuns(clinicId: $id, first: 20) {
      ...ProvisioningTimeline_RunFields
    }
  }
`);

const HealthChangedSubscription = graphql(`
  subscription ClinicPage_HealthChangedSubscription {
    clinicHealthChanged {
      ...IntegrityReport_HealthFields
    }
  }
`);

export function ClinicPage({ id }: { id: string }) {
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: ClinicQuery,
    variables: { id },
    requestPolicy: 'cache-and-network',
  });
  const [liveHealth, setLiveHealth] = useState<Health | null>(null);
  const [deleted, setDeleted] = useState(false);
  const refetch = useDebounced(() => {
    setLiveHealth(null);
    reexecute({ requestPolicy: 'network-only' });
  }, 400);

  useSubscriptionEvents(HealthChangedSubscription, {}, ({ clinicHealthChanged }) => {
    if (clinicHealthChanged.clinicId === id) setLiveHealth(clinicHealthChanged);
  });
  useProvisioningEvents((event) => {
    if (event.clinicId === id) refetch();
  });

  if (deleted)
    return (
      <>
        <h1 tabIndex={-1}>Clinic deleted</h1>
        <p className="notice notice-success" role="status">
          The clinic, its database and its role are gone.
        </p>
        <p>
          <Link href="/clinics">Back to clinics</Link>
        </p>
      </>
    );
  if (error && !data)
    return <ErrorNotice error={error} onRetry={() => reexecute({ requestPolicy: 'network-only' })} />;
  if (!data) return <Loading label="Checking the clinic database…" />;
  const clinic = data.clinic;
  if (!clinic)
    return (
      <>
        <h1 tabIndex={-1}>Clinic not found</h1>
        <Empty>
          No clinic has this id; it may have been deleted. <Link href="/clinics">Back to clinics</Link>
        </Empty>
      </>
    );
  const fromQuery = clinic.health;
  const health =
    liveHealth && Date.parse(liveHealth.lastCheck) > Date.parse(fromQuery.lastCheck) ? liveHealth : fromQuery;

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/clinics">Clinics</Link> <span aria-hidden="true">/</span>
      </nav>
      <div className="page-header">
        <h1 tabIndex={-1}>{clinic.name}</h1>
        <button
          type="button"
          className="button"
          onClick={() => refetch()}
          disabled={fetching}
          aria-label="Check this clinic again"
        >
          {fetching ? 'Checking…' : 'Check again'}
        </button>
      </div>
      <dl className="facts facts-wide">
        <div>
          <dt>Status</dt>
          <dd>{clinic.status}</dd>
        </div>
        <div>
          <dt>Subdomain</dt>
          <dd>{clinic.subdomain}</dd>
        </div>
        <div>
          <dt>Country</dt>
          <dd>{clinic.country}</dd>
        </div>
        <div>
          <dt>Server</dt>
          <dd>
            <code>{clinic.databaseServer}</code>
          </dd>
        </div>
        <div>
          <dt>Database</dt>
          <dd>
            <code>{clinic.databaseName}</code>
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{formatDateTime(clinic.createdAt)}</dd>
        </div>
        <div className="facts-span">
          <dt>Id</dt>
          <dd>
            <code>{clinic.id}</code>
          </dd>
        </div>
      </dl>

      <div className="clinic-grid">
        <section className="card" aria-labelledby="integrity-title">
          <h2 id="integrity-title">Integrity</h2>
          <IntegrityReport health={health} />
        </section>
        <ClinicActions clinic={clinic} onChanged={refetch} onDeleted={() => setDeleted(true)} />
      </div>

      <section aria-labelledby="runs-title">
        <h2 id="runs-title">Provisioning runs</h2>
        <ProvisioningTimeline runs={data.provisioningRuns} />
      </section>
    </>
  );
}
