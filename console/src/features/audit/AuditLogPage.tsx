import { type FormEvent, useId, useState } from 'react';
import { useResilientQuery } from '../../app/hooks';
import { Link, navigate, useLocation } from '../../app/router';
import { graphql } from '../../gql';
import { shortId } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
import { DateTime } from '../../ui/text';

const AuditLogQuery = graphql(`
  query AuditLogPage_AuditLogQuery($first: Int!, $after: String, $action: String, $actorId: ID, $clinicId: ID) {
    auditLog(first: $first, after: $after, action: $action, actorId: $actorId, clinicId: $clinicId) {
      edges {
        node {
          id
          action
          at
          actorId
          actor {
            email
            firstName
            lastName
            role
          }
          clinicId
          clinicName
          clinic {
            id
          }
          targetType
          targetId
          data
        }
      }
      pageInfo {
        hasNextPage
        endCursor
      }
    }
  }
`);

const PAGE_SIZE = 50;
/** Families of actions the server records; a prefix ending in "." matches the family. */
const FAMILIES = [
  'auth.',
  'clinic.',
  'registration.',
  'member.',
  'client.',
  'user.',
  'application.',
  'onboarding.',
  'webhook.',
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The filters live in the address (`/audit?action=clinic.&actor=…`), so links can point at them. */
function useFilters() {
  const { searchParams } = useLocation();
  const uuid = (name: string) => {
    const value = searchParams.get(name) ?? '';
    return UUID.test(value) ? value : null;
  };
  return {
    action: searchParams.get('action')?.trim() ?? '',
    actorId: uuid('actor'),
    clinicId: uuid('clinic'),
  };
}

/** `/audit?…` with `changes` applied (null removes a filter). */
export function auditHref(
  current: Record<string, string | null>,
  changes: Record<string, string | null>,
): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries({ ...current, ...changes })) if (value) params.set(name, value);
  const query = params.toString();
  return query ? `/audit?${query}` : '/audit';
}

export function AuditLogPage() {
  const { action, actorId, clinicId } = useFilters();
  const current = { action: action || null, actor: actorId, clinic: clinicId };
  const [draft, setDraft] = useState(action);
  // One query per loaded page: "Load more" adds the next cursor, a new filter starts over.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const filterKey = `${action}|${actorId}|${clinicId}`;
  const [seenKey, setSeenKey] = useState(filterKey);
  if (seenKey !== filterKey) {
    setSeenKey(filterKey);
    setCursors([null]);
    setDraft(action);
  }
  const inputId = useId();
  const listId = useId();

  const apply = (value: string) => navigate(auditHref(current, { action: value.trim() || null }));

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Audit log</h1>
      </div>
      <form
        className="filters"
        onSubmit={(event: FormEvent) => {
          event.preventDefault();
          apply(draft);
        }}
      >
        <div className="field">
          <label htmlFor={inputId}>Action</label>
          <input
            id={inputId}
            list={listId}
            placeholder="auth.sign_in, or a family such as auth."
            value={draft}
            onChange={(event) => setDraft(event.target.value)}
          />
          <datalist id={listId}>
            {FAMILIES.map((family) => (
              <option key={family} value={family} />
            ))}
          </datalist>
        </div>
        <button type="submit" className="button">
          Filter
        </button>
        {(action || actorId || clinicId) && (
          <button type="button" className="button" onClick={() => navigate('/audit')}>
            Clear all filters
          </button>
        )}
      </form>
      {(actorId || clinicId) && (
        <p className="hint" data-testid="audit-scope">
          {actorId && <>Only the entries of one actor. </>}
          {clinicId && <>Only the entries of one clinic. </>}
          <Link href={auditHref(current, { actor: null, clinic: null })}>Show everyone’s</Link>
        </p>
      )}
      <fieldset className="chips">
        <legend className="visually-hidden">Action families</legend>
        {FAMILIES.map((family) => (
          <button
            key={family}
            type="button"
            className="chip"
            aria-pressed={action === family}
            onClick={() => apply(action === family ? '' : family)}
          >
            {family.slice(0, -1)}
          </button>
        ))}
      </fieldset>
      <div className="table-wrap">
        <table className="data-table audit-table">
          <caption className="visually-hidden">Audit entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Action</th>
              <th scope="col">Actor</th>
              <th scope="col">Clinic</th>
              <th scope="col">Target</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          {cursors.map((after, index) => (
            <AuditChunk
              key={`${filterKey}:${after ?? 'first'}`}
              action={action}
              actorId={actorId}
              clinicId={clinicId}
              current={current}
              after={after}
              last={index === cursors.length - 1}
              onMore={(cursor) => setCursors((current) => [...current, cursor])}
            />
          ))}
        </table>
      </div>
    </>
  );
}

function AuditChunk({
  action,
  actorId,
  clinicId,
  current,
  after,
  last,
  onMore,
}: {
  action: string;
  actorId: string | null;
  clinicId: string | null;
  current: Record<string, string | null>;
  after: string | null;
  last: boolean;
  onMore: (cursor: string) => void;
}) {
  const { data, fetching, error, stale, refetch } = useResilientQuery({
    query: AuditLogQuery,
    variables: { first: PAGE_SIZE, after, action: action || null, actorId, clinicId },
    requestPolicy: 'cache-and-network',
  });
  const edges = data?.auditLog.edges ?? [];
  const pageInfo = data?.auditLog.pageInfo;
  const colSpan = 6;
  return (
    <tbody className={stale ? 'stale' : undefined}>
      {edges.map(({ node }) => (
        <tr key={node.id}>
          <td data-label="When">
            <DateTime iso={node.at} />
          </td>
          <td data-label="Action">
            <code>{node.action}</code>
          </td>
          <td data-label="Actor">
            {node.actor ? (
              <Link
                href={auditHref(current, { actor: node.actorId })}
                title={`Entries of ${node.actor.email ?? node.actorId}`}
              >
                {node.actor.firstName} {node.actor.lastName}
                {node.actor.email && <span className="muted small"> {node.actor.email}</span>}
              </Link>
            ) : node.actorId ? (
              <span className="muted" title={node.actorId}>
                account gone ({shortId(node.actorId)})
              </span>
            ) : (
              <span className="muted">Onramp (automatic)</span>
            )}
          </td>
          <td data-label="Clinic">
            {node.clinic ? (
              <Link href={`/clinics/${node.clinic.id}`}>{node.clinicName ?? 'clinic'}</Link>
            ) : node.clinicName ? (
              <span>
                {node.clinicName} <span className="muted small">(gone)</span>
              </span>
            ) : (
              '—'
            )}
          </td>
          <td data-label="Target">
            {node.targetType ? (
              <>
                {node.targetType}{' '}
                {node.targetId && <code title={node.targetId}>{shortId(node.targetId)}</code>}
              </>
            ) : (
              '—'
            )}
          </td>
          <td data-label="Details">
            <AuditData data={node.data} />
          </td>
        </tr>
      ))}
      {error && (
        <tr>
          <td colSpan={colSpan}>
            <ErrorNotice error={error} onRetry={refetch} />
          </td>
        </tr>
      )}
      {fetching && !data && (
        <tr>
          <td colSpan={colSpan}>
            <Loading />
          </td>
        </tr>
      )}
      {data && after === null && edges.length === 0 && (
        <tr>
          <td colSpan={colSpan}>
            <Empty>
              {action || actorId || clinicId ? 'No entries match these filters.' : 'The audit log is empty.'}
            </Empty>
          </td>
        </tr>
      )}
      {last && pageInfo?.hasNextPage && pageInfo.endCursor && (
        <tr>
          <td colSpan={colSpan}>
            <button type="button" className="button" onClick={() => onMore(pageInfo.endCursor as string)}>
              Load older entries
            </button>
          </td>
        </tr>
      )}
    </tbody>
  );
}

function AuditData({ data }: { data: unknown }) {
  if (data === null || data === undefined) return <span className="muted">—</span>;
  if (typeof data === 'object' && Object.keys(data).length === 0) return <span className="muted">—</span>;
  const entries = typeof data === 'object' && !Array.isArray(data) ? Object.entries(data) : null;
  if (!entries) return <code>{JSON.stringify(data)}</code>;
  return (
    <dl className="kv">
      {entries.map(([key, value]) => (
        <div key={key}>
          <dt>{key}</dt>
          <dd>
            {typeof value === 'string' ? (
              value
            ) : Array.isArray(value) && value.every((item) => typeof item === 'string') ? (
              <ul className="kv-list">
                {value.map((item) => (
                  <li key={item}>{item}</li>
                ))}
              </ul>
            ) : (
              JSON.stringify(value)
            )}
          </dd>
        </div>
      ))}
    </dl>
  );
}
