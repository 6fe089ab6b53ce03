/**
 * GraphQL twin of the webhook routes, for super-admins (the console's Applications page):
 * endpoints of any application, their deliveries with every attempt, and replays.
 */
import { builder } from '../../builder.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { WebhookAttempt, WebhookEndpoint } from '../../generated/central/client.js';
import { validateUuid } from '../onboarding/validation.js';
import type { DeliveryWithAttempts } from './service.js';

const actor = (context: { viewer: { userId: string } | null; ip: string | null }) => ({
  userId: context.viewer?.userId ?? null,
  onboardingId: null,
  ip: context.ip,
});

const WebhookEventEnum = builder.enumType('WebhookEvent', {
  description: 'An onboarding event a webhook endpoint can subscribe to.',
  values: {
    ONBOARDING_PROVISIONED: {
      value: 'onboarding.provisioned',
      description: 'DNS record and certificate in place: the onboarding is ACTIVATED.',
    },
    ONBOARDING_COMPLETED: {
      value: 'onboarding.completed',
      description: 'The application reported its tenant ready: COMPLETED.',
    },
    ONBOARDING_FAILED: {
      value: 'onboarding.failed',
      description: 'A provisioning attempt stopped at a step; provisioning again resumes.',
    },
  } as const,
});

const WebhookDeliveryStatusEnum = builder.enumType('WebhookDeliveryStatus', {
  description: 'Where a webhook delivery stands.',
  values: {
    PENDING: { value: 'pending', description: 'Not answered with a 2xx yet; retried for 24 hours.' },
    SUCCEEDED: { value: 'succeeded', description: 'The endpoint answered 2xx.' },
    FAILED: {
      value: 'failed',
      description: 'Every attempt within 24 hours failed, or the endpoint was deleted.',
    },
  } as const,
});

const WebhookEndpointRef = builder.objectRef<WebhookEndpoint>('WebhookEndpoint').implement({
  description: "An application's webhook endpoint; its signing secret is shown only on creation.",
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The endpoint (UUID).' }),
    applicationId: t.exposeID('applicationId', { description: 'The application it belongs to.' }),
    url: t.exposeString('url', { description: 'Where deliveries are POSTed.' }),
    events: t.field({
      type: [WebhookEventEnum],
      description: 'The events it receives.',
      resolve: (endpoint) =>
        endpoint.events as ('onboarding.provisioned' | 'onboarding.completed' | 'onboarding.failed')[],
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was registered.' }),
    deletedAt: t.expose('deletedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When it was deleted; nothing is sent to it since.',
    }),
  }),
});

const WebhookAttemptRef = builder.objectRef<WebhookAttempt>('WebhookAttempt').implement({
  description: 'One attempt of a delivery.',
  fields: (t) => ({
    attempt: t.exposeInt('attempt', { description: 'Its number, from 1.' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', description: 'When the request started.' }),
    durationMs: t.exposeInt('durationMs', { description: 'How long until the answer (or the failure).' }),
    responseStatus: t.exposeInt('responseStatus', {
      nullable: true,
      description: 'The HTTP status the endpoint answered; null when it did not answer.',
    }),
    error: t.exposeString('error', {
      nullable: true,
      description: 'Why it failed (a status, a refused connection, a timeout); null on success.',
    }),
  }),
});

const WebhookDeliveryRef = builder.objectRef<DeliveryWithAttempts>('WebhookDelivery').implement({
  description: 'One event sent to one endpoint, with its attempts.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The delivery (UUID), sent as Onramp-Delivery.' }),
    endpointId: t.exposeID('endpointId', { description: 'The endpoint.' }),
    eventId: t.exposeString('eventId', { description: 'The event (evt_…): a replay has the same one.' }),
    event: t.field({
      type: WebhookEventEnum,
      description: 'What happened.',
      resolve: (delivery) =>
        delivery.event as 'onboarding.provisioned' | 'onboarding.completed' | 'onboarding.failed',
    }),
    onboardingId: t.exposeID('onboardingId', { nullable: true, description: 'The onboarding it is about.' }),
    status: t.field({
      type: WebhookDeliveryStatusEnum,
      description: 'Where it stands.',
      resolve: (delivery) => delivery.status as 'pending' | 'succeeded' | 'failed',
    }),
    replayOfId: t.exposeID('replayOfId', {
      nullable: true,
      description: 'The delivery this one replays, if it is a replay.',
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was queued.' }),
    nextAttemptAt: t.expose('nextAttemptAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the next attempt is due, while pending after a failure.',
    }),
    deliveredAt: t.expose('deliveredAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the endpoint answered 2xx.',
    }),
    attempts: t.field({
      type: [WebhookAttemptRef],
      description: 'Every attempt, first to last.',
      resolve: (delivery) => delivery.attemptsLog,
    }),
  }),
});

const CreatedEndpointRef = builder
  .objectRef<{ endpoint: WebhookEndpoint; secret: string }>('CreateWebhookEndpointSuccess')
  .implement({
    description: 'The endpoint exists; its signing secret is shown here once.',
    fields: (t) => ({
      endpoint: t.field({
        type: WebhookEndpointRef,
        description: 'The endpoint.',
        resolve: (r) => r.endpoint,
      }),
      secret: t.exposeString('secret', {
        description: 'whsec_…: verifies the Onramp-Signature header of each delivery; shown this once.',
      }),
    }),
  });

const DeletedEndpointRef = builder
  .objectRef<{ endpoint: WebhookEndpoint }>('DeleteWebhookEndpointSuccess')
  .implement({
    description: 'Nothing more is sent to the endpoint; its deliveries are kept.',
    fields: (t) => ({
      endpoint: t.field({
        type: WebhookEndpointRef,
        description: 'The endpoint.',
        resolve: (r) => r.endpoint,
      }),
    }),
  });

const ReplayedRef = builder
  .objectRef<{ delivery: DeliveryWithAttempts }>('ReplayWebhookDeliverySuccess')
  .implement({
    description: 'A new delivery of the same event is queued, signed afresh.',
    fields: (t) => ({
      delivery: t.field({
        type: WebhookDeliveryRef,
        description: 'The new delivery.',
        resolve: (r) => r.delivery,
      }),
    }),
  });

const CreateWebhookEndpointInput = builder.inputType('CreateWebhookEndpointInput', {
  description: 'A webhook endpoint for an application.',
  fields: (t) => ({
    applicationId: t.id({ required: true, description: 'The application (UUID).' }),
    url: t.string({
      required: true,
      description:
        'https:// URL of a public host (http and private addresses only with WEBHOOK_ALLOW_PRIVATE_TARGETS).',
    }),
    events: t.field({ type: [WebhookEventEnum], required: true, description: 'The events to receive.' }),
  }),
});

builder.queryFields((t) => ({
  webhookEndpoints: t.field({
    type: [WebhookEndpointRef],
    description: "Super-admins: an application's webhook endpoints (deleted ones excluded).",
    authScopes: { superAdmin: true },
    args: { applicationId: t.arg.id({ required: true, description: 'The application (UUID).' }) },
    resolve: (_root, args, context) =>
      context.deps.webhooks.listEndpoints(validateUuid(String(args.applicationId), ['applicationId'])),
  }),
  webhookDeliveries: t.field({
    type: [WebhookDeliveryRef],
    description: "Super-admins: an application's webhook deliveries with their attempts, newest first.",
    authScopes: { superAdmin: true },
    args: {
      applicationId: t.arg.id({ required: true, description: 'The application (UUID).' }),
      first: t.arg.int({ defaultValue: 50, description: 'At most 200.' }),
    },
    resolve: (_root, args, context) =>
      context.deps.webhooks.listDeliveries(
        validateUuid(String(args.applicationId), ['applicationId']),
        args.first ?? 50,
      ),
  }),
}));

builder.mutationFields((t) => ({
  createWebhookEndpoint: t.field({
    type: CreatedEndpointRef,
    description:
      'Super-admins: registers a webhook endpoint for an application. VALIDATION_FAILED, NOT_FOUND.',
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: {
      input: t.arg({ type: CreateWebhookEndpointInput, required: true, description: 'The endpoint.' }),
    },
    resolve: (_root, args, context) =>
      context.deps.webhooks.createEndpoint(
        validateUuid(String(args.input.applicationId), ['input', 'applicationId']),
        { url: args.input.url, events: args.input.events },
        actor(context),
        ['input'],
      ),
  }),
  deleteWebhookEndpoint: t.field({
    type: DeletedEndpointRef,
    description: 'Super-admins: stops deliveries to an endpoint. NOT_FOUND.',
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: { id: t.arg.id({ required: true, description: 'The endpoint (UUID).' }) },
    resolve: async (_root, args, context) => ({
      endpoint: await context.deps.webhooks.deleteEndpoint(
        null,
        validateUuid(String(args.id), ['id']),
        actor(context),
      ),
    }),
  }),
  replayWebhookDelivery: t.field({
    type: ReplayedRef,
    description:
      'Super-admins: sends a delivery’s event again, as a new signed delivery. NOT_FOUND, CONFLICT.',
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { deliveryId: t.arg.id({ required: true, description: 'The delivery to replay (UUID).' }) },
    resolve: async (_root, args, context) => {
      const replay = await context.deps.webhooks.replay(
        validateUuid(String(args.deliveryId), ['deliveryId']),
        actor(context),
      );
      return { delivery: { ...replay, attemptsLog: [] } };
    },
  }),
}));
