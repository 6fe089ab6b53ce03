import { type FormEvent, useId, useState } from 'react';
import { useQuery } from 'urql';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { formatDateTime, shortId } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';

const AuditLogQuery = graphql(`
  query AuditLogPage_AuditLogQuery($first: Int!, $after: String, $action: String) {
    auditLog(first: $first, after: $after, action: $action) {
      edges {
        node {
          id
          action
          at
          actorId
          clinicId
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
const FAMILIES = ['auth.', 'clinic.', 'registration.', 'member.', 'client.', 'user.'];

export function AuditLogPage() {
  const [draft, setDraft] = useState('');
  const [action, setAction] = useState('');
  // One query per loaded page: "Load more" adds the next cursor, a new filter starts over.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const inputId = useId();
  const listId = useId();

  const apply = (value: string) => {
    setDraft(value);
    setAction(value.trim());
    setCursors([null]);
  };

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
        {action && (
          <button type="button" className="button" onClick={() => apply('')}>
            Clear
          </button>
        )}
      </form>
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
              key={`${action}:${after ?? 'first'}`}
              action={action}
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
  after,
  last,
  onMore,
}: {
  action: string;
  after: string | null;
  last: boolean;
  onMore: (cursor: string) => void;
}) {
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: AuditLogQuery,
    variables: { first: PAGE_SIZE, after, action: action || null },
    requestPolicy: 'cache-and-network',
  });
  const edges = data?.auditLog.edges ?? [];
  const pageInfo = data?.auditLog.pageInfo;
  const colSpan = 6;
  return (
    <tbody>
      {edges.map(({ node }) => (
        <tr key={node.id}>
          <td data-label="When">
            <time dateTime={node.at}>{formatDateTime(node.at)}</time>
          </td>
          <td data-label="Action">
            <code>{node.action}</code>
          </td>
          <td data-label="Actor">
            {node.actorId ? <code title={node.actorId}>{shortId(node.actorId)}</code> : '—'}
          </td>
          <td data-label="Clinic">
            {node.clinicId ? (
              <Link href={`/clinics/${node.clinicId}`} title={node.clinicId}>
                {shortId(node.clinicId)}
              </Link>
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
            <ErrorNotice error={error} onRetry={() => reexecute({ requestPolicy: 'network-only' })} />
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
            <Empty>{action ? `No entries for “${action}”.` : 'The audit log is empty.'}</Empty>
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
          <dd>{typeof value === 'string' ? value : JSON.stringify(value)}</dd>
        </div>
      ))}
    </dl>
  );
}
