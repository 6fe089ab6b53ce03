/** REST (snake_case) shapes of webhook endpoints; the secret appears only on creation. */
import type { WebhookEndpoint } from '../../generated/central/client.js';

export function presentEndpoint(endpoint: WebhookEndpoint) {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    created_at: endpoint.createdAt.toISOString(),
  };
}
