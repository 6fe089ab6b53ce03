/**
 * OpenAPI 3.1 description of the onboarding REST routes, served at GET /api/v1/openapi.json and
 * shown by the viewer at /api/v1/docs (docs/decisions/046). Generated from the zod schemas that
 * validate the requests (validation.ts); responses are zod schemas too, so presenters and
 * document share one description. onboarding.test.ts lints the document and checks that every
 * route of ONBOARDING_ROUTES appears in it.
 */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { completeBody, provisionBody, registerApplicationBody, startBody, uuidSchema } from './validation.js';

const EXAMPLE_UUID = '0f8fad5b-d9cb-469f-a165-70867728950e';
const EXAMPLE_TIME = '2026-12-10T09:30:00.000Z';
const EXAMPLE_WEBHOOK_ID = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const errorSchema = z
  .object({
    success: z.literal(false),
    error: z.string().openapi({
      description: 'Stable machine-readable code, e.g. validation_failed, not_found, rate_limited',
      example: 'validation_failed',
    }),
    message: z.string().openapi({
      description: 'Human-readable explanation in the language of the answer (Content-Language)',
    }),
    errors: z
      .array(
        z.object({
          field: z.string().openapi({ description: 'Body field, dotted', example: 'email' }),
          message: z.string().openapi({ description: 'What is wrong with it' }),
        }),
      )
      .optional()
      .openapi({ description: 'Every invalid field (422 only)' }),
    retry_after: z.number().int().optional().openapi({ description: 'Seconds to wait (429 only)' }),
  })
  .openapi('Error', { description: 'Every refusal has this envelope' });

const identity = {
  success: z.literal(true),
  uuid: z
    .string()
    .openapi({ format: 'uuid', description: 'Identifier of the onboarding; keep it', example: EXAMPLE_UUID }),
  subdomain: z.string().openapi({ description: 'Generated subdomain (unique)', example: 'clinique-du-lac' }),
  full_domain: z.string().openapi({
    description: 'Subdomain under the platform domain',
    example: 'clinique-du-lac.onramp.localhost',
  }),
  url: z.string().openapi({
    format: 'uri',
    description: 'HTTPS address of the tenant',
    example: 'https://clinique-du-lac.onramp.localhost',
  }),
  email: z.string().openapi({
    format: 'email',
    description: 'Administrator e-mail as given to start',
    example: 'admin@clinique-du-lac.fr',
  }),
  organization_name: z
    .string()
    .nullable()
    .openapi({ description: 'Organization name as given to start', example: 'Clinique du Lac' }),
  onboarding_status: z
    .enum(['pending', 'activated', 'completed'])
    .openapi({ description: 'pending after start, activated once provisioned, completed after complete' }),
};

const metadataSchema = z
  .object({
    created_at: z
      .string()
      .openapi({ format: 'date-time', description: 'When start was called', example: EXAMPLE_TIME }),
    updated_at: z
      .string()
      .openapi({ format: 'date-time', description: 'Last change', example: EXAMPLE_TIME }),
    dns_configured: z.boolean().openapi({ description: 'The DNS record of full_domain exists' }),
    ssl_configured: z.boolean().openapi({ description: 'A TLS certificate for full_domain was issued' }),
    infrastructure_status: z.enum(['pending', 'partial', 'ready', 'failed']).openapi({
      description: 'ready when DNS and TLS are both done; partial or failed after an interrupted provision',
    }),
    api_key_generated: z
      .boolean()
      .openapi({ description: 'An api_key / api_secret pair exists for this onboarding' }),
    provisioning_attempts: z
      .number()
      .int()
      .openapi({ description: 'Provision calls that did work', example: 1 }),
    is_idempotent: z.boolean().optional().openapi({
      description: 'Provision only: true when it was already provisioned and nothing was redone',
    }),
  })
  .openapi('OnboardingMetadata', { description: 'Technical state of the onboarding' });

const provisioningFailedSchema = errorSchema
  .extend({
    step: z.string().openapi({ description: 'The provisioning step that failed', example: 'ssl' }),
    uuid: z.string().openapi({ format: 'uuid', description: 'The onboarding', example: EXAMPLE_UUID }),
    onboarding_status: z
      .enum(['pending', 'activated', 'completed'])
      .openapi({ description: 'Status after the failure' }),
    metadata: metadataSchema,
  })
  .openapi('ProvisioningFailed', {
    description: 'Provisioning stopped at a step; provision again resumes it',
  });

const applicationSchema = z
  .object({
    success: z.literal(true),
    app_id: z
      .string()
      .openapi({ format: 'uuid', description: 'Identifier of the application', example: EXAMPLE_UUID }),
    app_name: z.string().openapi({ description: 'Name as registered', example: 'SIH Clinique' }),
    master_key: z.string().openapi({
      description: 'mk_…: send it as X-Master-Key. Shown once; only its hash is kept',
      example: 'mk_0123456789abcdef_REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDRED',
    }),
    created_at: z
      .string()
      .openapi({ format: 'date-time', description: 'When it was registered', example: EXAMPLE_TIME }),
  })
  .openapi('Application');

const startResponse = z.object(identity).openapi('StartResponse');

const provisionResponse = z
  .object({
    ...identity,
    api_key: z.string().nullable().openapi({
      description:
        "ak_…, shown once (null when not asked or already issued); identifies the tenant's own calls",
      example: 'ak_0123456789abcdef01234567',
    }),
    api_secret: z.string().nullable().openapi({
      description: "as_…, shown once; signs the tenant's own calls (HMAC-SHA256)",
      example: 'as_REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDRED',
    }),
    metadata: metadataSchema,
  })
  .openapi('ProvisionResponse');

const statusResponse = z
  .object({
    ...identity,
    tenant_id: z
      .string()
      .nullable()
      .openapi({ description: 'As reported by complete', example: 'tenant_12345' }),
    completed_at: z
      .string()
      .nullable()
      .openapi({ format: 'date-time', description: 'When complete was called' }),
    metadata: metadataSchema,
  })
  .openapi('StatusResponse');

const completeResponse = z
  .object({
    success: z.literal(true),
    message: z.string().openapi({
      description: 'English, or French with Accept-Language: fr',
      example: 'Onboarding marked as completed',
    }),
    uuid: identity.uuid,
    onboarding_status: z.literal('completed').openapi({ description: 'Always completed' }),
    tenant_id: z.string().openapi({ description: 'As given to complete', example: 'tenant_12345' }),
    completed_at: z
      .string()
      .openapi({ format: 'date-time', description: 'When complete was first called', example: EXAMPLE_TIME }),
  })
  .openapi('CompleteResponse');

const rateHeaders = z.object({
  'X-RateLimit-Remaining': z
    .string()
    .openapi({ description: 'Requests left in the current window', example: '9' }),
});

function refusal(description: string, error: string, message: string, extra: Record<string, unknown> = {}) {
  return {
    description,
    content: {
      'application/json': {
        schema: errorSchema,
        example: { success: false, error, message, ...extra },
      },
    },
  };
}

const common = {
  400: refusal('Malformed JSON, body or header', 'invalid_json', 'The body is not valid JSON'),
  401: refusal(
    'Missing, invalid or revoked X-Master-Key',
    'unauthenticated',
    'Invalid or revoked master key',
  ),
  422: refusal(
    'Validation failed; every invalid field is listed',
    'validation_failed',
    'Enter a valid e-mail address',
    {
      errors: [{ field: 'email', message: 'Enter a valid e-mail address' }],
    },
  ),
  429: {
    description: 'Rate limit exceeded',
    headers: z.object({
      'Retry-After': z.string().openapi({ description: 'Seconds before trying again', example: '3600' }),
      'X-RateLimit-Remaining': z.string().openapi({ example: '0' }),
    }),
    content: {
      'application/json': {
        schema: errorSchema,
        example: {
          success: false,
          error: 'rate_limited',
          message: 'Too many requests; retry in 3600 s',
          retry_after: 3600,
        },
      },
    },
  },
  500: refusal('Internal error', 'internal_error', 'Internal error'),
};
const notFound = refusal(
  'No such uuid for this application',
  'not_found',
  'No onboarding with this uuid for this application',
);

const signedHeaders = z.object({
  'X-Onramp-Timestamp': z
    .string()
    .optional()
    .openapi({ description: 'With X-Api-Key: Unix seconds of the request', example: '1796895000' }),
  'X-Onramp-Signature': z.string().optional().openapi({
    description: 'With X-Api-Key: v1=<hex HMAC-SHA256> of the request (security scheme apiKey)',
    example: 'v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd',
  }),
});

const apiKeyResponse = z
  .object({
    success: z.literal(true),
    uuid: z.string().openapi({ format: 'uuid', description: 'The onboarding', example: EXAMPLE_UUID }),
    api_key: z
      .string()
      .optional()
      .openapi({ description: 'ak_…, shown once', example: 'ak_0123456789abcdef01234567' }),
    api_secret: z.string().optional().openapi({ description: 'as_…, shown once; signs requests' }),
    api_key_generated: z.boolean().openapi({ description: 'Whether the onboarding now has credentials' }),
  })
  .openapi('ApiKeyResponse');

const methodNotAllowed = refusal('Only GET is served here', 'method_not_allowed', 'Use GET');

const idempotencyKey = z.string().max(255).optional().openapi({
  description:
    'Replays the first response for 24 h (secrets omitted). Same key, other body: 422; first request still running: 409.',
  example: 'b6f1c0de-start-1',
});

const json = <T extends z.ZodType>(schema: T, example: unknown) => ({
  content: { 'application/json': { schema, example } },
});

function registry(): OpenAPIRegistry {
  const r = new OpenAPIRegistry();
  r.registerComponent('securitySchemes', 'masterKey', {
    type: 'apiKey',
    in: 'header',
    name: 'X-Master-Key',
    description: 'The master key of the application (POST /api/v1/applications/register)',
  });
  r.registerComponent('securitySchemes', 'superAdmin', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'A super-admin access token (signInWithCode in GraphQL)',
  });
  r.registerComponent('securitySchemes', 'apiKey', {
    type: 'apiKey',
    in: 'header',
    name: 'X-Api-Key',
    description:
      "An onboarding's api_key, with X-Onramp-Timestamp (Unix seconds, within 5 minutes) and " +
      'X-Onramp-Signature: v1=<hex HMAC-SHA256(api_secret, "<timestamp>\\n<METHOD>\\n<path and query>\\n<hex sha256(body)>")>. ' +
      'Each signature is accepted once.',
  });

  const exampleIdentity = {
    success: true,
    uuid: EXAMPLE_UUID,
    subdomain: 'clinique-du-lac',
    full_domain: 'clinique-du-lac.onramp.localhost',
    url: 'https://clinique-du-lac.onramp.localhost',
    email: 'admin@clinique-du-lac.fr',
    organization_name: 'Clinique du Lac',
  };
  const exampleMetadata = {
    created_at: EXAMPLE_TIME,
    updated_at: EXAMPLE_TIME,
    dns_configured: true,
    ssl_configured: true,
    infrastructure_status: 'ready',
    api_key_generated: true,
    provisioning_attempts: 1,
  };

  r.registerPath({
    method: 'post',
    path: '/api/v1/applications/register',
    operationId: 'registerApplication',
    summary: 'Register an application and receive its master key (once)',
    tags: ['Applications'],
    security: [{ superAdmin: [] }],
    request: {
      headers: z.object({ 'Idempotency-Key': idempotencyKey }),
      body: { required: true, ...json(registerApplicationBody, { app_name: 'SIH Clinique' }) },
    },
    responses: {
      201: {
        description: 'Registered',
        ...json(applicationSchema, {
          success: true,
          app_id: EXAMPLE_UUID,
          app_name: 'SIH Clinique',
          master_key: 'mk_0123456789abcdef_REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDRED',
          created_at: EXAMPLE_TIME,
        }),
      },
      ...common,
      401: refusal(
        'Missing or invalid bearer token',
        'unauthenticated',
        'Send a super-admin access token as Authorization: Bearer …',
      ),
      403: refusal('Not a super-admin', 'forbidden', 'Super-admins only'),
    },
  });

  r.registerPath({
    method: 'post',
    path: '/api/v1/onboarding/start',
    operationId: 'startOnboarding',
    summary: 'Start an onboarding: uuid and subdomain',
    tags: ['Onboarding'],
    security: [{ masterKey: [] }],
    request: {
      headers: z.object({ 'Idempotency-Key': idempotencyKey }),
      body: {
        required: true,
        ...json(startBody, { email: 'admin@clinique-du-lac.fr', organization_name: 'Clinique du Lac' }),
      },
    },
    responses: {
      201: {
        description: 'Started',
        headers: rateHeaders,
        ...json(startResponse, { ...exampleIdentity, onboarding_status: 'pending' }),
      },
      ...common,
    },
  });

  r.registerPath({
    method: 'post',
    path: '/api/v1/onboarding/provision',
    operationId: 'provisionOnboarding',
    summary: 'Provision DNS and TLS, optionally an API key; idempotent',
    tags: ['Onboarding'],
    security: [{ masterKey: [] }],
    request: {
      headers: z.object({ 'Idempotency-Key': idempotencyKey }),
      body: { required: true, ...json(provisionBody, { uuid: EXAMPLE_UUID, generate_api_key: true }) },
    },
    responses: {
      200: {
        description: 'Provisioned (or already was: is_idempotent true, api_key and api_secret null)',
        headers: rateHeaders,
        ...json(provisionResponse, {
          ...exampleIdentity,
          onboarding_status: 'activated',
          api_key: 'ak_0123456789abcdef01234567',
          api_secret: 'as_REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDRED',
          metadata: { ...exampleMetadata, is_idempotent: false },
        }),
      },
      ...common,
      404: notFound,
      409: refusal(
        'Another request is provisioning it, or the Idempotency-Key is in use',
        'conflict',
        'This onboarding is being provisioned',
      ),
      500: {
        description: 'Provisioning stopped at a step; call again to resume',
        content: {
          'application/json': {
            schema: provisioningFailedSchema,
            example: {
              success: false,
              error: 'provisioning_failed',
              message: 'Provisioning failed at step ssl',
              step: 'ssl',
              uuid: EXAMPLE_UUID,
              onboarding_status: 'pending',
              metadata: {
                ...exampleMetadata,
                ssl_configured: false,
                infrastructure_status: 'partial',
                api_key_generated: false,
              },
            },
          },
        },
      },
    },
  });

  r.registerPath({
    method: 'get',
    path: '/api/v1/onboarding/status/{uuid}',
    operationId: 'onboardingStatus',
    summary: "Status of an onboarding (master key, or the onboarding's own signed API key)",
    tags: ['Onboarding'],
    security: [{ masterKey: [] }, { apiKey: [] }],
    request: {
      params: z.object({ uuid: uuidSchema.openapi({ description: 'The uuid returned by start' }) }),
      headers: signedHeaders,
    },
    responses: {
      200: {
        description: 'Status',
        headers: rateHeaders,
        ...json(statusResponse, {
          ...exampleIdentity,
          onboarding_status: 'activated',
          tenant_id: null,
          completed_at: null,
          metadata: exampleMetadata,
        }),
      },
      ...common,
      400: refusal(
        'The uuid in the path is not a UUID',
        'invalid_uuid',
        'The uuid in the path must be a UUID',
      ),
      401: refusal(
        'Missing, invalid or revoked key, or a signature that is wrong, too old or already used',
        'invalid_signature',
        'This signature was already used (replay)',
      ),
      404: notFound,
    },
  });

  const apiKeyPath = '/api/v1/onboarding/{uuid}/api-key';
  const uuidParams = z.object({ uuid: uuidSchema.openapi({ description: 'The uuid returned by start' }) });
  r.registerPath({
    method: 'post',
    path: apiKeyPath,
    operationId: 'rotateOnboardingApiKey',
    summary: 'Issue new API credentials for a provisioned onboarding; the previous ones stop at once',
    tags: ['Onboarding'],
    security: [{ masterKey: [] }],
    request: { params: uuidParams, headers: z.object({ 'Idempotency-Key': idempotencyKey }) },
    responses: {
      200: {
        description: 'New credentials, shown once',
        ...json(apiKeyResponse, {
          success: true,
          uuid: EXAMPLE_UUID,
          api_key: 'ak_0123456789abcdef01234567',
          api_secret: 'as_REDACTEDREDACTEDREDACTEDREDACTEDREDACTEDRED',
          api_key_generated: true,
        }),
      },
      ...common,
      404: refusal(
        'No provisioned onboarding with this uuid for this application',
        'not_found',
        'No such provisioned onboarding',
      ),
    },
  });
  r.registerPath({
    method: 'delete',
    path: apiKeyPath,
    operationId: 'revokeOnboardingApiKey',
    summary: 'Revoke the API credentials of an onboarding',
    tags: ['Onboarding'],
    security: [{ masterKey: [] }],
    request: { params: uuidParams },
    responses: {
      200: {
        description: 'Revoked; rotate issues new ones',
        ...json(apiKeyResponse, { success: true, uuid: EXAMPLE_UUID, api_key_generated: false }),
      },
      ...common,
      404: refusal(
        'No provisioned onboarding with this uuid for this application',
        'not_found',
        'No such provisioned onboarding',
      ),
    },
  });

  r.registerPath({
    method: 'post',
    path: '/api/v1/onboarding/{uuid}/complete',
    operationId: 'completeOnboarding',
    summary: 'Report that the tenant is ready',
    tags: ['Onboarding'],
    security: [{ masterKey: [] }],
    request: {
      params: z.object({ uuid: uuidSchema.openapi({ description: 'The uuid returned by start' }) }),
      headers: z.object({
        'Idempotency-Key': idempotencyKey,
        'Accept-Language': z
          .string()
          .optional()
          .openapi({ description: 'fr answers with the French message', example: 'fr' }),
      }),
      body: {
        required: true,
        ...json(completeBody, { tenant_id: 'tenant_12345', metadata: { plan: 'premium' } }),
      },
    },
    responses: {
      200: {
        description: 'Completed',
        ...json(completeResponse, {
          success: true,
          message: 'Onboarding marked as completed',
          uuid: EXAMPLE_UUID,
          onboarding_status: 'completed',
          tenant_id: 'tenant_12345',
          completed_at: EXAMPLE_TIME,
        }),
      },
      ...common,
      404: notFound,
      409: refusal(
        'Not provisioned yet, or completed with another tenant_id',
        'conflict',
        'The onboarding is not provisioned yet',
      ),
    },
  });

  const webhookEvents = z
    .array(z.enum(['onboarding.provisioned', 'onboarding.completed', 'onboarding.failed']))
    .min(1)
    .openapi({
      description: 'Events to receive',
      example: ['onboarding.provisioned', 'onboarding.completed'],
    });
  const webhookEndpoint = z
    .object({
      id: z.string().openapi({ format: 'uuid', description: 'The endpoint', example: EXAMPLE_WEBHOOK_ID }),
      url: z.string().openapi({ format: 'uri', description: 'Where deliveries are POSTed' }),
      events: webhookEvents,
      created_at: z.string().openapi({ format: 'date-time', description: 'When it was registered' }),
    })
    .openapi('WebhookEndpoint');
  const exampleEndpoint = {
    id: EXAMPLE_WEBHOOK_ID,
    url: 'https://integrator.example.com/onramp/webhooks',
    events: ['onboarding.provisioned', 'onboarding.completed'],
    created_at: EXAMPLE_TIME,
  };
  const signedOnly = refusal(
    'Missing API credentials, or a signature that is wrong, too old or already used',
    'invalid_signature',
    'The signature does not match the request',
  );
  const webhookHeaders = z.object({
    'X-Onramp-Timestamp': z
      .string()
      .openapi({ description: 'Unix seconds of the request', example: '1796895000' }),
    'X-Onramp-Signature': z.string().openapi({
      description: 'v1=<hex HMAC-SHA256> of the request (security scheme apiKey)',
      example: 'v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd',
    }),
  });
  r.registerPath({
    method: 'post',
    path: '/api/v1/webhooks',
    operationId: 'createWebhookEndpoint',
    summary: "Register a webhook endpoint for the application's onboarding events (signed API credentials)",
    description:
      'Endpoints belong to the application of the credentials: they receive the events of every one of its onboardings. Each delivery is a POST of the event\'s JSON with `Onramp-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`, `Onramp-Event`, `Onramp-Event-Id` and `Onramp-Delivery`; answer 2xx within 10 s, else it is retried with a doubling delay for 24 h. Refuse timestamps more than 5 minutes old. https only in production; private, loopback and link-local addresses are refused.',
    tags: ['Webhooks'],
    security: [{ apiKey: [] }],
    request: {
      headers: webhookHeaders.extend({ 'Idempotency-Key': idempotencyKey }),
      body: {
        required: true,
        ...json(
          z
            .object({
              url: z.string().openapi({ format: 'uri', description: 'https:// URL of a public host' }),
              events: webhookEvents,
            })
            .openapi('CreateWebhookEndpointRequest'),
          { url: exampleEndpoint.url, events: exampleEndpoint.events },
        ),
      },
    },
    responses: {
      201: {
        description: 'Registered; the signing secret is shown this once',
        ...json(
          webhookEndpoint
            .extend({
              success: z.literal(true),
              secret: z.string().openapi({ description: 'whsec_…: verifies Onramp-Signature; shown once' }),
            })
            .openapi('CreatedWebhookEndpoint'),
          { success: true, ...exampleEndpoint, secret: 'whsec_REDACTEDREDACTEDREDACTEDREDACTEDREDACTED' },
        ),
      },
      400: common[400],
      401: signedOnly,
      422: refusal(
        'Validation failed; every invalid field is listed',
        'validation_failed',
        'url must be an https:// URL',
        {
          errors: [{ field: 'url', message: 'url must be an https:// URL' }],
        },
      ),
      429: common[429],
      500: common[500],
    },
  });
  r.registerPath({
    method: 'get',
    path: '/api/v1/webhooks',
    operationId: 'listWebhookEndpoints',
    summary: "The application's webhook endpoints (signed API credentials)",
    tags: ['Webhooks'],
    security: [{ apiKey: [] }],
    request: { headers: webhookHeaders },
    responses: {
      200: {
        description: 'Endpoints, newest first (secrets never appear again)',
        ...json(
          z.object({
            success: z.literal(true),
            webhooks: z.array(webhookEndpoint).openapi({ description: 'Endpoints not deleted' }),
          }),
          {
            success: true,
            webhooks: [exampleEndpoint],
          },
        ),
      },
      401: signedOnly,
      429: common[429],
      500: common[500],
    },
  });
  r.registerPath({
    method: 'delete',
    path: '/api/v1/webhooks/{uuid}',
    operationId: 'deleteWebhookEndpoint',
    summary: 'Stop deliveries to an endpoint (signed API credentials)',
    tags: ['Webhooks'],
    security: [{ apiKey: [] }],
    request: {
      params: z.object({ uuid: uuidSchema.openapi({ description: 'The endpoint id' }) }),
      headers: webhookHeaders,
    },
    responses: {
      200: {
        description: 'Deleted; its past deliveries are kept',
        ...json(
          z.object({
            success: z.literal(true),
            id: z.string().openapi({ format: 'uuid', description: 'The endpoint' }),
            deleted: z.literal(true).openapi({ description: 'Nothing more is sent to it' }),
          }),
          { success: true, id: EXAMPLE_WEBHOOK_ID, deleted: true },
        ),
      },
      400: refusal('The id in the path is not a UUID', 'invalid_uuid', 'The uuid in the path must be a UUID'),
      401: signedOnly,
      404: refusal(
        'No such endpoint for this application',
        'not_found',
        'No webhook endpoint with this id for this application',
      ),
      429: common[429],
      500: common[500],
    },
  });
  const webhookEvent = z
    .object({
      id: z.string().openapi({ description: 'The event (evt_…); a retry or replay has the same one' }),
      type: z.enum(['onboarding.provisioned', 'onboarding.completed', 'onboarding.failed']),
      created_at: z.string().openapi({ format: 'date-time', description: 'When it happened' }),
      data: z.object({
        uuid: z.string().openapi({ format: 'uuid', description: 'The onboarding' }),
        onboarding_status: z.enum(['pending', 'activated', 'completed']),
        infrastructure_status: z.enum(['pending', 'partial', 'ready', 'failed']),
        subdomain: z.string(),
        full_domain: z.string(),
        url: z.string().openapi({ format: 'uri' }),
        tenant_id: z.string().nullable(),
        failed_step: z
          .string()
          .optional()
          .openapi({ description: 'onboarding.failed only: the step that failed' }),
      }),
    })
    .openapi('WebhookEvent');
  r.registerWebhook({
    method: 'post',
    path: 'onboardingEvent',
    operationId: 'onboardingEvent',
    summary: 'What Onramp POSTs to a webhook endpoint',
    tags: ['Webhooks'],
    // Onramp calls the endpoint; the receiver authenticates it by the Onramp-Signature header.
    security: [],
    request: {
      headers: z.object({
        'Onramp-Signature': z.string().openapi({
          description: 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
          example: 't=1796895000,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd',
        }),
        'Onramp-Event': z.string().openapi({ example: 'onboarding.provisioned' }),
        'Onramp-Event-Id': z.string().openapi({ example: 'evt_4f0c8d1e2a3b4c5d6e7f8091a2b3c4d5' }),
        'Onramp-Delivery': z.string().openapi({ format: 'uuid', description: 'This delivery' }),
      }),
      body: {
        required: true,
        ...json(webhookEvent, {
          id: 'evt_4f0c8d1e2a3b4c5d6e7f8091a2b3c4d5',
          type: 'onboarding.provisioned',
          created_at: EXAMPLE_TIME,
          data: {
            uuid: EXAMPLE_UUID,
            onboarding_status: 'activated',
            infrastructure_status: 'ready',
            subdomain: 'clinique-du-lac',
            full_domain: 'clinique-du-lac.onramp.localhost',
            url: 'https://clinique-du-lac.onramp.localhost',
            tenant_id: null,
          },
        }),
      },
    },
    responses: {
      200: {
        description: 'Any 2xx within 10 s acknowledges the delivery; anything else is retried for 24 h',
      },
    },
  });

  r.registerPath({
    method: 'get',
    path: '/api/v1/openapi.json',
    operationId: 'openApi',
    summary: 'This document',
    tags: ['Documentation'],
    security: [],
    responses: {
      200: {
        description: 'OpenAPI 3.1 document',
        content: { 'application/json': { schema: z.object({}).passthrough() } },
      },
      405: methodNotAllowed,
    },
  });

  r.registerPath({
    method: 'get',
    path: '/api/v1/docs',
    operationId: 'docs',
    summary: 'This document in a browser (Redoc)',
    tags: ['Documentation'],
    security: [],
    responses: {
      200: { description: 'HTML page', content: { 'text/html': { schema: z.string() } } },
      405: methodNotAllowed,
    },
  });
  return r;
}

export function openApiDocument(serverUrl: string) {
  return new OpenApiGeneratorV31(registry().definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'Onramp onboarding service',
      version: '1.0.0',
      description:
        'Stateless onboarding of tenants: start, provision (DNS, TLS, optional API key), status, complete. ' +
        'Secrets (master_key, api_key, api_secret) are shown once. Every refusal is `{ success: false, error, message }`; ' +
        'messages are English, or French with `Accept-Language: fr` where the integration guide gives a French wording.',
      license: { name: 'Proprietary', identifier: 'LicenseRef-Proprietary' },
    },
    servers: [{ url: serverUrl, description: 'This server' }],
    tags: [
      { name: 'Applications', description: 'Integrating applications and their master keys' },
      { name: 'Onboarding', description: 'The onboarding of one tenant, step by step' },
      { name: 'Webhooks', description: 'Onboarding events pushed to the application, signed' },
      { name: 'Documentation', description: 'This description' },
    ],
  });
}
