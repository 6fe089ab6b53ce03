import { type FormEvent, useId, useState } from 'react';
import { useQuery } from 'urql';
import { graphql } from '../../gql';
import { formatDateTime } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
import { Linkified } from '../../ui/text';

const MailboxQuery = graphql(`
  query DevMailboxPage_MailboxQuery($to: String!) {
    devMailbox(to: $to) {
      id
      kind
      subject
      text
      status
      createdAt
      sentAt
    }
  }
`);

/** Development only: what the built-in dev mailbox accepted instead of sending (no SMTP_URL). */
export function DevMailboxPage() {
  return (
    <RecipientSearch
      title="Dev mailbox"
      label="Recipient e-mail"
      type="email"
      intro="What the built-in mailbox accepted instead of sending it (development and test, when SMTP_URL is not set). Newest first."
    >
      {(to) => <Mailbox to={to} />}
    </RecipientSearch>
  );
}

function Mailbox({ to }: { to: string }) {
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: MailboxQuery,
    variables: { to },
    requestPolicy: 'network-only',
  });
  if (error)
    return <ErrorNotice error={error} onRetry={() => reexecute({ requestPolicy: 'network-only' })} />;
  if (!data || fetching) return <Loading />;
  if (data.devMailbox.length === 0) return <Empty>No message for {to}.</Empty>;
  return (
    <ul className="messages">
      {data.devMailbox.map((message) => (
        <li key={message.id} className="card message">
          <header>
            <h2>{message.subject}</h2>
            <p className="muted">
              {message.kind} · {message.status.toLowerCase()} · {formatDateTime(message.createdAt)}
            </p>
          </header>
          <pre>
            <Linkified text={message.text} />
          </pre>
        </li>
      ))}
    </ul>
  );
}

/** A page that asks for a recipient, then shows what was sent to it. */
export function RecipientSearch({
  title,
  label,
  type,
  intro,
  children,
}: {
  title: string;
  label: string;
  type: 'email' | 'tel';
  intro: string;
  children: (to: string) => React.ReactNode;
}) {
  const [draft, setDraft] = useState('');
  const [to, setTo] = useState('');
  const id = useId();
  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>{title}</h1>
      </div>
      <p className="hint">{intro}</p>
      <form
        className="filters"
        onSubmit={(event: FormEvent) => {
          event.preventDefault();
          setTo(draft.trim());
        }}
      >
        <div className="field">
          <label htmlFor={id}>{label}</label>
          <input
            id={id}
            type={type}
            required
            value={draft}
            onChange={(event) => setDraft(event.target.value)}
          />
        </div>
        <button type="submit" className="button button-primary">
          Show
        </button>
      </form>
      {to ? children(to) : <Empty>Enter a recipient to see what was sent.</Empty>}
    </>
  );
}
