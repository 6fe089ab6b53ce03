import { useId, useMemo, useState } from 'react';
import { useDebounced, useNow, useResilientQuery, useSubscriptionEvents } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import type { ClinicHealthTable_RowFieldsFragment, DbStatus } from '../../gql/graphql';
import { DB_STATUSES, DbStatusBadge } from '../../ui/badges';
import { formatDate, formatDateTime } from '../../ui/format';
import { Empty, ErrorNotice, Loading, StaleData } from '../../ui/states';
import { DateTime, Identifier } from '../../ui/text';
import { useProvisioningEvents } from '../live/ProvisioningFeed';

graphql(`
  fragment ClinicHealthTable_RowFields on ClinicHealth {
    clinicId
    name
    subdomain
    server
    serverReachable
    dbStatus
    schemaVersion
    tablesCount
    expectedTables
    missingTables
    errors
    lastCheck
    createdAt
    admin {
      email
    }
  }
`);

const ClinicsHealthQuery = graphql(`
  query ClinicHealthTable_ClinicsHealthQuery {
    clinicsHealth {
      checkedAt
      clinics {
        ...ClinicHealthTable_RowFields
      }
    }
  }
`);

const HealthChangedSubscription = graphql(`
  subscription ClinicHealthTable_HealthChangedSubscription {
    clinicHealthChanged {
      ...ClinicHealthTable_RowFields
    }
  }
`);

type Row = ClinicHealthTable_RowFieldsFragment;

/** The newer of two reports of one clinic. */
const newer = (a: Row, b: Row | undefined) =>
  b && Date.parse(b.lastCheck) > Date.parse(a.lastCheck) ? b : a;

export function ClinicHealthTable() {
  const { data, fetching, error, stale, receivedAt, refetch } = useResilientQuery({
    query: ClinicsHealthQuery,
    requestPolicy: 'cache-and-network',
  });
  const [live, setLive] = useState<Record<string, Row>>({});
  const [status, setStatus] = useState<DbStatus | 'ALL'>('ALL');
  const [search, setSearch] = useState('');
  const now = useNow(5_000);
  const ids = { search: useId(), status: useId() };

  const subscription = useSubscriptionEvents(HealthChangedSubscription, {}, (event) => {
    const row = event.clinicHealthChanged;
    setLive((current) => ({ ...current, [row.clinicId]: newer(row, current[row.clinicId]) }));
  });

  // A registration that commits (or a failed one that rolls back) changes the set of clinics.
  const refresh = useDebounced(refetch, 400);
  useProvisioningEvents((event) => {
    if (event.step === 'commit' && event.status === 'SUCCEEDED') refresh();
    if (event.step === 'central_records' && event.status === 'ROLLED_BACK') refresh();
  });

  const rows = useMemo(() => {
    const base = data?.clinicsHealth.clinics ?? [];
    const known = new Set(base.map((row) => row.clinicId));
    return base
      .map((row) => newer(row, live[row.clinicId]))
      .concat(
        // Health changes of clinics the last report did not have yet.
        Object.values(live).filter((row) => !known.has(row.clinicId)),
      );
  }, [data, live]);

  const counts = useMemo(() => {
    const result = Object.fromEntries(DB_STATUSES.map((s) => [s, 0])) as Record<DbStatus, number>;
    for (const row of rows) result[row.dbStatus] += 1;
    return result;
  }, [rows]);

  const visible = useMemo(() => {
    const needle = search.trim().toLowerCase();
    return rows.filter(
      (row) =>
        (status === 'ALL' || row.dbStatus === status) &&
        (!needle ||
          [row.name, row.subdomain, row.server, row.clinicId].some((v) => v.toLowerCase().includes(needle))),
    );
  }, [rows, status, search]);

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Clinics</h1>
        <button type="button" className="button" onClick={refetch} disabled={fetching}>
          {fetching ? 'Checking…' : 'Check all now'}
        </button>
      </div>

      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading label="Checking every clinic database…" />}
      {/* No counters before the first answer: zeros would read as "no clinics". */}
      {data && (
        <StaleData stale={stale} receivedAt={receivedAt}>
          <section aria-label="Totals" className="totals">
            <button
              type="button"
              className="total"
              aria-pressed={status === 'ALL'}
              onClick={() => setStatus('ALL')}
            >
              <span className="total-value" data-testid="total-all">
                {rows.length}
              </span>
              <span className="total-label">Total</span>
            </button>
            {DB_STATUSES.map((s) => (
              <button
                key={s}
                type="button"
                className={`total total-${s.toLowerCase()}`}
                aria-pressed={status === s}
                onClick={() => setStatus(status === s ? 'ALL' : s)}
              >
                <span className="total-value" data-testid={`total-${s.toLowerCase()}`}>
                  {counts[s]}
                </span>
                <span className="total-label">{s.toLowerCase()}</span>
              </button>
            ))}
          </section>

          <form className="filters" onSubmit={(event) => event.preventDefault()}>
            <div className="field">
              <label htmlFor={ids.search}>Search</label>
              <input
                id={ids.search}
                type="search"
                placeholder="Name, subdomain, server or id"
                value={search}
                onChange={(event) => setSearch(event.target.value)}
              />
            </div>
            <div className="field">
              <label htmlFor={ids.status}>Database health</label>
              <select
                id={ids.status}
                value={status}
                onChange={(event) => setStatus(event.target.value as DbStatus | 'ALL')}
              >
                <option value="ALL">All</option>
                {DB_STATUSES.map((s) => (
                  <option key={s} value={s}>
                    {s.toLowerCase()}
                  </option>
                ))}
              </select>
            </div>
          </form>

          {subscription.error && (
            <ErrorNotice message="Live updates are interrupted; reconnecting. The table may be out of date." />
          )}
          {rows.length === 0 && <Empty>No clinics yet. They appear here as soon as one registers.</Empty>}
          {rows.length > 0 && visible.length === 0 && <Empty>No clinic matches these filters.</Empty>}
          {visible.length > 0 && (
            <div className="table-wrap">
              <table className="data-table clinics-table">
                <caption className="visually-hidden">
                  Clinic databases and their health; updates live.
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Clinic</th>
                    <th scope="col">Database</th>
                    <th scope="col">Subdomain</th>
                    <th scope="col">Server</th>
                    <th scope="col">Schema</th>
                    <th scope="col">Tables</th>
                    <th scope="col">Admin</th>
                    <th scope="col">Created</th>
                    <th scope="col">Last check</th>
                  </tr>
                </thead>
                <tbody>
                  {visible.map((row) => (
                    <tr key={row.clinicId} data-clinic-id={row.clinicId}>
                      <th scope="row" data-label="Clinic">
                        <Link href={`/clinics/${row.clinicId}`}>{row.name}</Link>
                      </th>
                      <td data-label="Database">
                        <DbStatusBadge status={row.dbStatus} />
                      </td>
                      <td data-label="Subdomain">{row.subdomain}</td>
                      <td data-label="Server">
                        <Identifier>{row.server}</Identifier>
                        {!row.serverReachable && (
                          <>
                            {' '}
                            <span className="text-warn" data-testid="server-unreachable">
                              unreachable
                            </span>
                          </>
                        )}
                      </td>
                      <td data-label="Schema">{row.schemaVersion ?? '—'}</td>
                      <td data-label="Tables">
                        <span className={row.tablesCount < row.expectedTables ? 'text-warn' : undefined}>
                          {row.tablesCount}/{row.expectedTables}
                        </span>
                      </td>
                      <td data-label="Admin">
                        {row.admin?.email ? (
                          <a href={`mailto:${row.admin.email}`}>
                            <Identifier>{row.admin.email}</Identifier>
                          </a>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td data-label="Created">
                        {row.createdAt ? (
                          <time
                            dateTime={row.createdAt}
                            title={formatDateTime(row.createdAt)}
                            className="nowrap"
                          >
                            {formatDate(row.createdAt)}
                          </time>
                        ) : (
                          '—'
                        )}
                      </td>
                      <td data-label="Last check" data-testid="last-check">
                        <DateTime iso={row.lastCheck} relativeTo={now} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </StaleData>
      )}
    </>
  );
}
