import { type FormEvent, useId, useState } from 'react';
import { useClient, useQuery } from 'urql';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { ConfirmDialog } from '../../ui/ConfirmDialog';
import { formatAgo, formatDateTime } from '../../ui/format';
import { describeError, Empty, ErrorNotice, Loading } from '../../ui/states';
import { ApplicationWebhooks } from '../webhooks/ApplicationWebhooks';
import { MasterKeyPanel } from './MasterKeyPanel';

const ApplicationsQuery = graphql(`
  query ApplicationsPage_ApplicationsQuery {
    applications {
      id
      name
      createdAt
      hasActiveKey
      keyPrefix
      keyLastUsedAt
      onboardingsCount
    }
  }
`);

// The mutations run through client.mutation(), not useMutation: the hook would keep the key in
// its state for as long as the page is open. urql's document cache stores query results only, so
// the key passes through no cache either; it is held by the panel until the operator hides it.
const RegisterMutation = graphql(`
  mutation ApplicationsPage_RegisterMutation($name: String!) {
    registerApplication(name: $name) {
      __typename
      ... on ApplicationKeyIssued {
        masterKey
        application {
          id
          name
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const RotateMutation = graphql(`
  mutation ApplicationsPage_RotateKeyMutation($applicationId: ID!) {
    rotateApplicationKey(applicationId: $applicationId) {
      __typename
      ... on ApplicationKeyIssued {
        masterKey
        application {
          id
          name
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const RevokeMutation = graphql(`
  mutation ApplicationsPage_RevokeKeyMutation($applicationId: ID!) {
    revokeApplicationKey(applicationId: $applicationId) {
      __typename
      ... on ApplicationKeyRevoked {
        application {
          id
          name
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

interface Target {
  id: string;
  name: string;
}

type Outcome = { kind: 'error'; message: string } | { kind: 'revoked'; name: string };

export function ApplicationsPage() {
  const client = useClient();
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: ApplicationsQuery,
    requestPolicy: 'cache-and-network',
  });
  const refetch = () => reexecute({ requestPolicy: 'network-only' });
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [confirming, setConfirming] = useState<{ action: 'rotate' | 'revoke'; app: Target } | null>(null);
  const [issued, setIssued] = useState<{ name: string; masterKey: string; rotated: boolean } | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const nameId = useId();
  const [webhooksOf, setWebhooksOf] = useState<Target | null>(null);

  async function register(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setOutcome(null);
    setIssued(null);
    const result = await client.mutation(RegisterMutation, { name }).toPromise();
    setBusy(false);
    const answer = result.data?.registerApplication;
    if (result.error) return setOutcome({ kind: 'error', message: describeError(result.error) });
    if (answer?.__typename !== 'ApplicationKeyIssued') {
      return setOutcome({
        kind: 'error',
        message: answer && 'message' in answer ? answer.message : 'Registration failed.',
      });
    }
    setName('');
    setIssued({ name: answer.application.name, masterKey: answer.masterKey, rotated: false });
    refetch();
  }

  async function perform(action: 'rotate' | 'revoke', app: Target) {
    setConfirming(null);
    setBusy(true);
    setOutcome(null);
    setIssued(null);
    const variables = { applicationId: app.id };
    if (action === 'rotate') {
      const result = await client.mutation(RotateMutation, variables).toPromise();
      setBusy(false);
      const answer = result.data?.rotateApplicationKey;
      if (result.error) return setOutcome({ kind: 'error', message: describeError(result.error) });
      if (answer?.__typename === 'ApplicationKeyIssued') {
        setIssued({ name: answer.application.name, masterKey: answer.masterKey, rotated: true });
      } else {
        setOutcome({
          kind: 'error',
          message: answer && 'message' in answer ? answer.message : 'Rotation failed.',
        });
      }
    } else {
      const result = await client.mutation(RevokeMutation, variables).toPromise();
      setBusy(false);
      const answer = result.data?.revokeApplicationKey;
      if (result.error) return setOutcome({ kind: 'error', message: describeError(result.error) });
      if (answer?.__typename === 'ApplicationKeyRevoked') {
        setOutcome({ kind: 'revoked', name: answer.application.name });
      } else {
        setOutcome({
          kind: 'error',
          message: answer && 'message' in answer ? answer.message : 'Revocation failed.',
        });
      }
    }
    refetch();
  }

  const applications = data?.applications ?? [];

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Applications</h1>
        <Link href="/onboardings" className="button">
          All onboardings
        </Link>
      </div>

      <form className="filters card" onSubmit={register} aria-label="Register an application">
        <div className="field field-grow">
          <label htmlFor={nameId}>New application name</label>
          <input
            id={nameId}
            required
            maxLength={120}
            placeholder="e.g. Clinic ERP"
            value={name}
            onChange={(event) => setName(event.target.value)}
          />
        </div>
        <button type="submit" className="button button-primary" disabled={busy || name.trim() === ''}>
          {busy ? 'Working…' : 'Register application'}
        </button>
      </form>

      {issued && (
        <MasterKeyPanel
          applicationName={issued.name}
          masterKey={issued.masterKey}
          rotated={issued.rotated}
          onDone={() => setIssued(null)}
        />
      )}
      <div aria-live="polite">
        {outcome?.kind === 'error' && <ErrorNotice message={outcome.message} />}
        {outcome?.kind === 'revoked' && (
          <p className="notice notice-success">
            The master key of {outcome.name} is revoked: it no longer works. Rotate to issue a new one.
          </p>
        )}
      </div>

      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading label="Loading applications…" />}
      {data && applications.length === 0 && (
        <Empty>No applications yet. Register one above to get its master key.</Empty>
      )}
      {applications.length > 0 && (
        <div className="table-wrap">
          <table className="data-table applications-table">
            <caption className="visually-hidden">Applications of the onboarding service</caption>
            <thead>
              <tr>
                <th scope="col">Application</th>
                <th scope="col">Master key</th>
                <th scope="col">Created</th>
                <th scope="col">Key last used</th>
                <th scope="col">Onboardings</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {applications.map((app) => (
                <tr key={app.id} data-application-id={app.id}>
                  <th scope="row" data-label="Application">
                    {app.name}
                  </th>
                  <td data-label="Master key">
                    {app.hasActiveKey && app.keyPrefix ? (
                      <code title="The public start of the key; the rest is never shown again">
                        {app.keyPrefix}_…
                      </code>
                    ) : (
                      <span className="badge badge-revoked">REVOKED</span>
                    )}
                  </td>
                  <td data-label="Created">
                    <time dateTime={app.createdAt}>{formatDateTime(app.createdAt)}</time>
                  </td>
                  <td data-label="Key last used">
                    {app.keyLastUsedAt ? (
                      <time dateTime={app.keyLastUsedAt} title={formatDateTime(app.keyLastUsedAt)}>
                        {formatAgo(app.keyLastUsedAt)}
                      </time>
                    ) : (
                      <span className="muted">never</span>
                    )}
                  </td>
                  <td data-label="Onboardings">
                    <Link
                      href={`/onboardings?application=${app.id}`}
                      aria-label={`${app.onboardingsCount} onboardings of ${app.name}`}
                    >
                      {app.onboardingsCount}
                    </Link>
                  </td>
                  <td data-label="Actions">
                    <div className="row-actions">
                      <button
                        type="button"
                        className="button button-small"
                        disabled={busy}
                        aria-label={`Rotate the key of ${app.name}`}
                        onClick={() => setConfirming({ action: 'rotate', app })}
                      >
                        {app.hasActiveKey ? 'Rotate' : 'Issue key'}
                      </button>
                      <button
                        type="button"
                        className="button button-small button-danger"
                        disabled={busy || !app.hasActiveKey}
                        aria-label={`Revoke the key of ${app.name}`}
                        onClick={() => setConfirming({ action: 'revoke', app })}
                      >
                        Revoke
                      </button>
                      <button
                        type="button"
                        className="button button-small"
                        aria-pressed={webhooksOf?.id === app.id}
                        aria-label={`Webhooks of ${app.name}`}
                        onClick={() => setWebhooksOf(webhooksOf?.id === app.id ? null : app)}
                      >
                        Webhooks
                      </button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {webhooksOf && <ApplicationWebhooks key={webhooksOf.id} application={webhooksOf} />}

      {/* One dialog for both actions: ConfirmDialog labels itself by a fixed id. */}
      <ConfirmDialog
        open={confirming !== null}
        title={
          confirming?.action === 'revoke'
            ? `Revoke the master key of ${confirming.app.name}?`
            : `Rotate the master key of ${confirming?.app.name ?? ''}?`
        }
        confirmLabel={confirming?.action === 'revoke' ? 'Revoke key' : 'Rotate key'}
        danger={confirming?.action === 'revoke'}
        onConfirm={() => confirming && perform(confirming.action, confirming.app)}
        onCancel={() => setConfirming(null)}
      >
        {confirming?.action === 'revoke' ? (
          <p>
            The key stops working immediately, and so do the API credentials of all its onboardings: the
            application can no longer start or provision onboardings until you rotate to issue a new key, and
            its tenants' credentials do not come back (it issues new ones).
          </p>
        ) : (
          <p>
            A new key is issued and shown once. The current key, if any, stops working immediately: the
            application must switch to the new one.
          </p>
        )}
      </ConfirmDialog>
    </>
  );
}
