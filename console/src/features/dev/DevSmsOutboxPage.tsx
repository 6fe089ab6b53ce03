import { useQuery } from 'urql';
import { graphql } from '../../gql';
import { formatDateTime } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
import { RecipientSearch } from './DevMailboxPage';

const OutboxQuery = graphql(`
  query DevSmsOutboxPage_OutboxQuery($to: String!) {
    devSmsOutbox(to: $to) {
      to
      text
      at
    }
  }
`);

/** Development only: what the built-in SMS outbox would have sent (no SMS_GATEWAY_URL). */
export function DevSmsOutboxPage() {
  return (
    <RecipientSearch
      title="SMS outbox"
      label="Recipient phone (international format)"
      type="tel"
      intro="What the built-in outbox would have sent (development and test, when SMS_GATEWAY_URL is not set). Newest first; kept in memory until the server restarts."
    >
      {(to) => <Outbox to={to} />}
    </RecipientSearch>
  );
}

function Outbox({ to }: { to: string }) {
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: OutboxQuery,
    variables: { to },
    requestPolicy: 'network-only',
  });
  if (error)
    return <ErrorNotice error={error} onRetry={() => reexecute({ requestPolicy: 'network-only' })} />;
  if (!data || fetching) return <Loading />;
  if (data.devSmsOutbox.length === 0) return <Empty>No SMS for {to}.</Empty>;
  return (
    <ul className="messages">
      {data.devSmsOutbox.map((sms) => (
        <li key={`${sms.at}:${sms.text}`} className="card message">
          <p className="muted">{formatDateTime(sms.at)}</p>
          <pre>{sms.text}</pre>
        </li>
      ))}
    </ul>
  );
}
