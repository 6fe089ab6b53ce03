import { useState } from 'react';
import { useClient, useQuery } from 'urql';
import { graphql } from '../../gql';
import { formatAgo, formatDateTime, formatDuration } from '../../ui/format';
import { describeError, Empty, ErrorNotice, Loading } from '../../ui/states';

const WebhooksQuery = graphql(`
  query ApplicationWebhooks_Query($applicationId: ID!) {
    webhookEndpoints(applicationId: $applicationId) {
      id
      url
      events
      createdAt
    }
    webhookDeliveries(applicationId: $applicationId, first: 50) {
      id
      endpointId
      eventId
      event
      onboardingId
      status
      replayOfId
      createdAt
      nextAttemptAt
      deliveredAt
      attempts {
        attempt
        startedAt
        durationMs
        responseStatus
        error
      }
    }
  }
`);

const ReplayMutation = graphql(`
  mutation ApplicationWebhooks_ReplayMutation($deliveryId: ID!) {
    replayWebhookDelivery(deliveryId: $deliveryId) {
      __typename
      ... on ReplayWebhookDeliverySuccess {
        delivery {
          id
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const EVENT_NAMES: Record<string, string> = {
  ONBOARDING_PROVISIONED: 'onboarding.provisioned',
  ONBOARDING_COMPLETED: 'onboarding.completed',
  ONBOARDING_FAILED: 'onboarding.failed',
};

/** An application's webhook endpoints and deliveries; an operator replays a delivery from here. */
export function ApplicationWebhooks({ application }: { application: { id: string; name: string } }) {
  const client = useClient();
  const [{ data, fetching, error }, reexecute] = useQuery({
    query: WebhooksQuery,
    variables: { applicationId: application.id },
    requestPolicy: 'cache-and-network',
  });
  const refetch = () => reexecute({ requestPolicy: 'network-only' });
  const [busy, setBusy] = useState(false);
  const [notice, setNotice] = useState<{ kind: 'error' | 'success'; message: string } | null>(null);

  async function replay(deliveryId: string) {
    setBusy(true);
    setNotice(null);
    const result = await client.mutation(ReplayMutation, { deliveryId }).toPromise();
    setBusy(false);
    const answer = result.data?.replayWebhookDelivery;
    if (result.error) setNotice({ kind: 'error', message: describeError(result.error) });
    else if (answer?.__typename === 'ReplayWebhookDeliverySuccess')
      setNotice({ kind: 'success', message: 'Replay queued: a new delivery, signed afresh.' });
    else
      setNotice({
        kind: 'error',
        message: answer && 'message' in answer ? answer.message : 'Replay failed.',
      });
    refetch();
  }

  const endpoints = data?.webhookEndpoints ?? [];
  const deliveries = data?.webhookDeliveries ?? [];
  const urlOf = new Map(endpoints.map((endpoint) => [endpoint.id, endpoint.url]));

  return (
    <section className="card" aria-labelledby={`webhooks-${application.id}`}>
      <div className="page-header">
        <h2 id={`webhooks-${application.id}`}>Webhooks of {application.name}</h2>
        <button type="button" className="button button-small" onClick={refetch} disabled={fetching}>
          Refresh
        </button>
      </div>
      <div aria-live="polite">
        {notice?.kind === 'error' && <ErrorNotice message={notice.message} />}
        {notice?.kind === 'success' && <p className="notice notice-success">{notice.message}</p>}
      </div>
      {error && <ErrorNotice error={error} onRetry={refetch} />}
      {!data && fetching && <Loading label="Loading webhooks…" />}
      {data && endpoints.length === 0 && (
        <Empty>No endpoints. The application registers them with POST /api/v1/webhooks.</Empty>
      )}
      {endpoints.length > 0 && (
        <ul className="webhook-endpoints">
          {endpoints.map((endpoint) => (
            <li key={endpoint.id} data-endpoint-id={endpoint.id}>
              <code>{endpoint.url}</code>{' '}
              <span className="muted">
                {endpoint.events.map((event) => EVENT_NAMES[event] ?? event).join(', ')}
              </span>
            </li>
          ))}
        </ul>
      )}
      {data && deliveries.length === 0 && endpoints.length > 0 && <Empty>No deliveries yet.</Empty>}
      {deliveries.length > 0 && (
        <div className="table-wrap">
          <table className="data-table webhook-deliveries-table">
            <caption className="visually-hidden">
              Webhook deliveries of {application.name}, newest first
            </caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Status</th>
                <th scope="col">Attempts</th>
                <th scope="col">Queued</th>
                <th scope="col">Endpoint</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {deliveries.map((delivery) => {
                const last = delivery.attempts.at(-1);
                return (
                  <tr key={delivery.id} data-delivery-id={delivery.id}>
                    <th scope="row" data-label="Event">
                      {EVENT_NAMES[delivery.event] ?? delivery.event}
                      {delivery.replayOfId && <span className="muted"> (replay)</span>}
                      <br />
                      <code className="muted" title="Event id: a replay carries the same">
                        {delivery.eventId}
                      </code>
                    </th>
                    <td data-label="Status">
                      <span
                        className={`badge badge-run-${delivery.status === 'SUCCEEDED' ? 'succeeded' : delivery.status === 'FAILED' ? 'failed' : 'running'}`}
                        data-testid="delivery-status"
                      >
                        {delivery.status}
                      </span>
                    </td>
                    <td data-label="Attempts" data-testid="delivery-attempts">
                      {delivery.attempts.length}
                      {last && (
                        <span className="muted">
                          {' '}
                          · last: {last.responseStatus ?? 'no answer'}
                          {last.error && last.error !== `HTTP ${last.responseStatus}`
                            ? ` (${last.error})`
                            : ''}
                          , {formatDuration(last.durationMs)}
                        </span>
                      )}
                      {delivery.nextAttemptAt && (
                        <span className="muted"> · next {formatDateTime(delivery.nextAttemptAt)}</span>
                      )}
                    </td>
                    <td data-label="Queued">
                      <time dateTime={delivery.createdAt} title={formatDateTime(delivery.createdAt)}>
                        {formatAgo(delivery.createdAt)}
                      </time>
                    </td>
                    <td data-label="Endpoint">
                      <code>{urlOf.get(delivery.endpointId) ?? 'deleted endpoint'}</code>
                    </td>
                    <td data-label="Actions">
                      <button
                        type="button"
                        className="button button-small"
                        disabled={busy || !urlOf.has(delivery.endpointId)}
                        aria-label={`Replay delivery ${delivery.id}`}
                        onClick={() => replay(delivery.id)}
                      >
                        Replay
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
