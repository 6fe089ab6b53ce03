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
import { HeldServers } from './HeldServers';

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
  query ClinicHealthTable_ClinicsHealthQuery($first: Int!, $after: String, $status: DbStatus, $search: String) {
    clinicsHealth {
      checkedAt
      total
      byStatus {
        status
        count
      }
      page(first: $first, after: $after, status: $status, search: $search) {
        edges {
          node {
            ...ClinicHealthTable_RowFields
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`);

/** Rows per page: the server pages and filters, so the fleet's size never reaches the browser. */
export const HEALTH_PAGE_SIZE = 50;

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
  const [status, setStatusFilter] = useState<DbStatus | 'ALL'>('ALL');
  const [search, setSearch] = useState('');
  const [needle, setNeedle] = useState('');
  // Cursors of the pages before this one (the first page has none): Previous pops one.
  const [cursors, setCursors] = useState<(string | null)[]>([]);
  const after = cursors.at(-1) ?? null;
  const { data, fetching, error, stale, receivedAt, refetch } = useResilientQuery({
    query: ClinicsHealthQuery,
    variables: {
      first: HEALTH_PAGE_SIZE,
      after,
      status: status === 'ALL' ? null : status,
      search: needle || null,
    },
    requestPolicy: 'cache-and-network',
  });
  const [live, setLive] = useState<Record<string, Row>>({});
  const setStatus = (next: DbStatus | 'ALL') => {
    setStatusFilter(next);
    setCursors([]);
  };
  // The search goes to the server once typing pauses, from the first page.
  const searchLater = useDebounced(() => {
    setNeedle(search.trim());
    setCursors([]);
  }, 300);
  const now = useNow(5_000);
  const ids = { search: useId(), status: useId() };

  // A registration that commits (or a failed one that rolls back) changes the set of clinics; a
  // health change changes the counts (and maybe which rows the filters keep).
  const refresh = useDebounced(refetch, 400);
  const subscription = useSubscriptionEvents(HealthChangedSubscription, {}, (event) => {
    const row = event.clinicHealthChanged;
    setLive((current) => ({ ...current, [row.clinicId]: newer(row, current[row.clinicId]) }));
    refresh();
  });

  useProvisioningEvents((event) => {
    if (event.step === 'commit' && event.status === 'SUCCEEDED') refresh();
    if (event.step === 'central_records' && event.status === 'ROLLED_BACK') refresh();
  });

  const report = data?.clinicsHealth;
  // This page, each row as its newest report (the subscription may be ahead of the page).
  const rows = useMemo(
    () => (report?.page.edges ?? []).map((edge) => newer(edge.node, live[edge.node.clinicId])),
    [report, live],
  );
  const counts = useMemo(() => {
    const result = Object.fromEntries(DB_STATUSES.map((s) => [s, 0])) as Record<DbStatus, number>;
    for (const row of report?.byStatus ?? []) result[row.status] = row.count;
    // A change to a row of this page counts at once; the refetch it asks for confirms it.
    for (const edge of report?.page.edges ?? []) {
      const shown = newer(edge.node, live[edge.node.clinicId]);
      if (shown.dbStatus === edge.node.dbStatus) continue;
      result[edge.node.dbStatus] = Math.max(0, result[edge.node.dbStatus] - 1);
      result[shown.dbStatus] += 1;
    }
    return result;
  }, [report, live]);
  // Until the refetch an event asks for lands, a row whose status left the filter stays hidden.
  const visible = rows.filter((row) => status === 'ALL' || row.dbStatus === status);
  const filtered = status !== 'ALL' || needle !== '';
  const endCursor = report?.page.pageInfo.endCursor ?? null;

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Clinics</h1>
        <button type="button" className="button" onClick={refetch} disabled={fetching}>
          {fetching ? 'Checking…' : 'Check all now'}
        </button>
      </div>

      <HeldServers />
      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading label="Reading the health of every clinic database…" />}
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
                {report?.total ?? 0}
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
                placeholder="Name or subdomain"
                value={search}
                onChange={(event) => {
                  setSearch(event.target.value);
                  searchLater();
                }}
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
          {visible.length === 0 && !filtered && cursors.length === 0 && (
            <Empty>No clinics yet. They appear here as soon as one registers.</Empty>
          )}
          {visible.length === 0 && filtered && <Empty>No clinic matches these filters.</Empty>}
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
          {(cursors.length > 0 || report?.page.pageInfo.hasNextPage) && (
            <nav className="pager" aria-label="Pages">
              <button
                type="button"
                className="button"
                disabled={cursors.length === 0}
                onClick={() => setCursors((current) => current.slice(0, -1))}
              >
                Previous
              </button>
              <span data-testid="page-number">Page {cursors.length + 1}</span>
              <button
                type="button"
                className="button"
                disabled={!report?.page.pageInfo.hasNextPage || endCursor === null}
                onClick={() => setCursors((current) => [...current, endCursor])}
              >
                Next
              </button>
            </nav>
          )}
        </StaleData>
      )}
    </>
  );
}
