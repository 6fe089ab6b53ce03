import { useState } from 'react';
import { useDebounced, useResilientQuery, useSubscriptionEvents } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { formatDate } from '../../ui/format';
import { Empty, ErrorNotice, Loading, StaleData } from '../../ui/states';
import { DateTime, Identifier } from '../../ui/text';
import { useProvisioningEvents } from '../live/ProvisioningFeed';
import { ClinicActions } from './ClinicActions';
import { type Health, IntegrityReport } from './IntegrityReport';
import { ProvisioningTimeline, type RepairEntry } from './ProvisioningTimeline';

const ClinicQuery = graphql(`
  query ClinicPage_ClinicQuery($id: ID!) {
    clinic(id: $id) {
      id
      name
      country
      subdomain
      fqdn
      status
      createdAt
      databaseName
      databaseServer
      schemaVersion
      restorableUntil
      admin {
        id
        email
        firstName
        lastName
        emailVerified
        consents {
          id
          document
          version
          acceptedAt
          withdrawnAt
        }
      }
      dnsRecords {
        name
        type
        value
        ttl
      }
      certificate {
        provider
        issuer
        serialNumber
        notBefore
        notAfter
      }
      health {
        ...IntegrityReport_HealthFields
      }
    }
    provisioningRuns(clinicId: $id, first: 20) {
      ...ProvisioningTimeline_RunFields
    }
    repairs: auditLog(first: 20, action: "clinic.repair", clinicId: $id) {
      edges {
        node {
          id
          at
          data
          actor {
            email
            firstName
            lastName
          }
        }
      }
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

const DAY_MS = 86_400_000;

export function ClinicPage({ id }: { id: string }) {
  const { data, fetching, error, stale, receivedAt, refetch } = useResilientQuery({
    query: ClinicQuery,
    variables: { id },
    requestPolicy: 'cache-and-network',
  });
  const [liveHealth, setLiveHealth] = useState<Health | null>(null);
  const refresh = useDebounced(() => {
    setLiveHealth(null);
    refetch();
  }, 400);

  useSubscriptionEvents(HealthChangedSubscription, {}, ({ clinicHealthChanged }) => {
    if (clinicHealthChanged.clinicId === id) setLiveHealth(clinicHealthChanged);
  });
  useProvisioningEvents((event) => {
    if (event.clinicId === id) refresh();
  });

  if (error && !data) return <ErrorNotice error={error} onRetry={refetch} />;
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
  const runs = data.provisioningRuns;
  // Until repairs are provisioning runs of their own, the audit log's entries stand in for them.
  const repairs: RepairEntry[] = runs.some((run) => run.kind === 'REPAIR')
    ? []
    : data.repairs.edges.map(({ node }) => {
        const recorded = (node.data ?? {}) as { actions?: unknown; before?: unknown; after?: unknown };
        return {
          id: node.id,
          at: node.at,
          actor: node.actor,
          actions: Array.isArray(recorded.actions) ? recorded.actions.map(String) : [],
          before: typeof recorded.before === 'string' ? recorded.before : null,
          after: typeof recorded.after === 'string' ? recorded.after : null,
        };
      });
  const certificate = clinic.certificate;
  const daysLeft = certificate ? Math.floor((Date.parse(certificate.notAfter) - Date.now()) / DAY_MS) : null;

  return (
    <StaleData stale={stale} receivedAt={receivedAt}>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <Link href="/clinics">Clinics</Link> <span aria-hidden="true">/</span>
      </nav>
      <div className="page-header">
        <h1 tabIndex={-1}>{clinic.name}</h1>
        <button
          type="button"
          className="button"
          onClick={() => refresh()}
          disabled={fetching}
          aria-label="Check this clinic again"
        >
          {fetching ? 'Checking…' : 'Check again'}
        </button>
      </div>
      {error && <ErrorNotice error={error} onRetry={refetch} />}
      <dl className="facts facts-wide">
        <div>
          <dt>Status</dt>
          <dd>{clinic.status}</dd>
        </div>
        <div>
          <dt>Subdomain</dt>
          <dd>
            <Identifier>{clinic.fqdn}</Identifier>
          </dd>
        </div>
        <div>
          <dt>Country</dt>
          <dd>{clinic.country}</dd>
        </div>
        <div>
          <dt>Server</dt>
          <dd>
            <Identifier>{clinic.databaseServer}</Identifier>
          </dd>
        </div>
        <div>
          <dt>Database</dt>
          <dd>
            <Identifier>{clinic.databaseName}</Identifier>
          </dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>
            <DateTime iso={clinic.createdAt} />
          </dd>
        </div>
        <div data-testid="clinic-admin">
          <dt>Admin</dt>
          <dd>
            {clinic.admin ? (
              <>
                {clinic.admin.firstName} {clinic.admin.lastName}
                <br />
                {clinic.admin.email ? (
                  <a href={`mailto:${clinic.admin.email}`}>{clinic.admin.email}</a>
                ) : (
                  <span className="muted">no e-mail</span>
                )}{' '}
                <span className="muted">
                  ({clinic.admin.emailVerified ? 'e-mail confirmed' : 'e-mail not confirmed yet'})
                </span>
              </>
            ) : (
              <span className="muted">none</span>
            )}
          </dd>
        </div>
        <div className="facts-span">
          <dt>Id</dt>
          <dd>
            <Identifier>{clinic.id}</Identifier>
          </dd>
        </div>
      </dl>

      <div className="clinic-grid">
        <section className="card" aria-labelledby="integrity-title">
          <h2 id="integrity-title">Integrity</h2>
          <IntegrityReport health={health} />
        </section>
        <ClinicActions clinic={clinic} dbStatus={health.dbStatus} onChanged={refresh} onDeleted={refresh} />
      </div>

      <div className="clinic-grid">
        <section className="card" aria-labelledby="dns-title" data-testid="clinic-dns">
          <h2 id="dns-title">DNS</h2>
          {clinic.dnsRecords.length === 0 ? (
            <p className="muted">No record published for {clinic.fqdn}.</p>
          ) : (
            <table className="data-table compact-table">
              <caption className="visually-hidden">DNS records of {clinic.fqdn}</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Type</th>
                  <th scope="col">Value</th>
                  <th scope="col">TTL</th>
                </tr>
              </thead>
              <tbody>
                {clinic.dnsRecords.map((record) => (
                  <tr key={`${record.type}:${record.value}`}>
                    <td data-label="Name">
                      <Identifier>{record.name}</Identifier>
                    </td>
                    <td data-label="Type">{record.type}</td>
                    <td data-label="Value">
                      <Identifier>{record.value}</Identifier>
                    </td>
                    <td data-label="TTL">{record.ttl} s</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section className="card" aria-labelledby="consents-title" data-testid="clinic-admin-consents">
          <h2 id="consents-title">Admin's consents</h2>
          {!clinic.admin || clinic.admin.consents.length === 0 ? (
            <p className="muted">No recorded acceptance.</p>
          ) : (
            <table className="data-table compact-table">
              <caption className="visually-hidden">What the clinic's admin accepted, newest first</caption>
              <thead>
                <tr>
                  <th scope="col">Document</th>
                  <th scope="col">Version</th>
                  <th scope="col">Accepted</th>
                  <th scope="col">Withdrawn</th>
                </tr>
              </thead>
              <tbody>
                {clinic.admin.consents.map((consent) => (
                  <tr key={consent.id}>
                    <td data-label="Document">
                      {consent.document === 'TERMS' ? 'Terms of use' : 'Privacy notice'}
                    </td>
                    <td data-label="Version">{consent.version}</td>
                    <td data-label="Accepted">
                      <DateTime iso={consent.acceptedAt} />
                    </td>
                    <td data-label="Withdrawn">
                      {consent.withdrawnAt ? (
                        <DateTime iso={consent.withdrawnAt} />
                      ) : (
                        <span className="muted">—</span>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </section>
        <section className="card" aria-labelledby="certificate-title" data-testid="clinic-certificate">
          <h2 id="certificate-title">Certificate</h2>
          {certificate ? (
            <dl className="facts">
              <div className="facts-span">
                <dt>Issuer</dt>
                <dd>
                  {certificate.issuer} <span className="muted">({certificate.provider})</span>
                </dd>
              </div>
              <div>
                <dt>Expires</dt>
                <dd>
                  <span className="nowrap">{formatDate(certificate.notAfter)}</span>{' '}
                  <span className={daysLeft !== null && daysLeft < 30 ? 'text-warn' : 'muted'}>
                    ({daysLeft !== null && daysLeft >= 0 ? `in ${daysLeft} days` : 'expired'})
                  </span>
                </dd>
              </div>
              <div>
                <dt>Serial</dt>
                <dd>
                  <Identifier>{certificate.serialNumber}</Identifier>
                </dd>
              </div>
            </dl>
          ) : (
            <p className="muted">No certificate issued for {clinic.fqdn}.</p>
          )}
        </section>
      </div>

      <section aria-labelledby="runs-title">
        <h2 id="runs-title">Provisioning runs and repairs</h2>
        <ProvisioningTimeline runs={runs} repairs={repairs} linkRuns />
      </section>
    </StaleData>
  );
}
