/**
 * OpenAPI 3.1 description of the onboarding REST routes, served at GET /api/v1/openapi.json.
 * Written by hand next to the routes; onboarding.test.ts checks that every route of
 * ONBOARDING_ROUTES appears here with its method.
 */

const json = (schema: Record<string, unknown>) => ({ 'application/json': { schema } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const error = (description: string) => ({ description, content: json(ref('Error')) });

const rateHeaders = {
  'X-RateLimit-Remaining': {
    description: 'Requests left in the current window',
    schema: { type: 'integer' },
  },
};
const limited = {
  description: 'Rate limit exceeded',
  headers: {
    'Retry-After': { description: 'Seconds before trying again', schema: { type: 'integer' } },
    'X-RateLimit-Remaining': { schema: { type: 'integer', const: 0 } },
  },
  content: json(ref('Error')),
};
const idempotencyKey = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Replays the first response for 24 h (secrets omitted). Same key, other body: 422; first request still running: 409.',
  schema: { type: 'string', maxLength: 255 },
};
const uuidParam = { name: 'uuid', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const common = {
  '400': error('Malformed JSON, body or header'),
  '401': error('Missing, invalid or revoked X-Master-Key'),
  '422': error('Validation failed'),
  '429': limited,
  '500': error('Internal error'),
};

export function openApiDocument(serverUrl: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Onramp onboarding service',
      version: '1.0.0',
      description:
        'Stateless onboarding of tenants: start, provision (DNS, TLS, optional API key), status, complete. ' +
        'Secrets (master_key, api_key, api_secret) are shown once and stored hashed.',
    },
    servers: [{ url: serverUrl }],
    security: [{ masterKey: [] }],
    paths: {
      '/api/v1/applications/register': {
        post: {
          operationId: 'registerApplication',
          summary: 'Register an application and receive its master key (once)',
          security: [{ superAdmin: [] }],
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['app_name'],
              properties: { app_name: { type: 'string', minLength: 1, maxLength: 120 } },
            }),
          },
          responses: {
            '201': { description: 'Registered', content: json(ref('Application')) },
            ...common,
            '401': error('Missing or invalid bearer token'),
            '403': error('Not a super-admin'),
          },
        },
      },
      '/api/v1/onboarding/start': {
        post: {
          operationId: 'startOnboarding',
          summary: 'Start an onboarding: uuid and subdomain',
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['email'],
              properties: {
                email: { type: 'string', format: 'email' },
                organization_name: { type: ['string', 'null'], maxLength: 120 },
              },
            }),
          },
          responses: {
            '201': { description: 'Started', headers: rateHeaders, content: json(ref('StartResponse')) },
            ...common,
          },
        },
      },
      '/api/v1/onboarding/provision': {
        post: {
          operationId: 'provisionOnboarding',
          summary: 'Provision DNS and TLS, optionally an API key; idempotent',
          parameters: [idempotencyKey],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['uuid'],
              properties: {
                uuid: { type: 'string', format: 'uuid' },
                generate_api_key: { type: 'boolean', default: false },
              },
            }),
          },
          responses: {
            '200': {
              description: 'Provisioned (or already was)',
              headers: rateHeaders,
              content: json(ref('ProvisionResponse')),
            },
            ...common,
            '404': error('No such uuid for this application'),
            '409': error('Another request is provisioning it, or the Idempotency-Key is in use'),
            '500': error('Provisioning stopped at a step; call again to resume'),
          },
        },
      },
      '/api/v1/onboarding/status/{uuid}': {
        get: {
          operationId: 'onboardingStatus',
          summary: 'Status of an onboarding',
          parameters: [uuidParam],
          responses: {
            '200': { description: 'Status', headers: rateHeaders, content: json(ref('StatusResponse')) },
            ...common,
            '404': error('No such uuid for this application'),
          },
        },
      },
      '/api/v1/onboarding/{uuid}/complete': {
        post: {
          operationId: 'completeOnboarding',
          summary: 'Report that the tenant is ready',
          parameters: [uuidParam, idempotencyKey],
          requestBody: {
            required: true,
            content: json({
              type: 'object',
              required: ['tenant_id'],
              properties: { tenant_id: { type: 'string', maxLength: 200 }, metadata: { type: 'object' } },
            }),
          },
          responses: {
            '200': { description: 'Completed', content: json(ref('CompleteResponse')) },
            ...common,
            '404': error('No such uuid for this application'),
            '409': error('Not provisioned yet, or completed with another tenant_id'),
          },
        },
      },
      '/api/v1/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1 document', content: json({ type: 'object' }) } },
        },
      },
    },
    components: {
      securitySchemes: {
        masterKey: { type: 'apiKey', in: 'header', name: 'X-Master-Key' },
        superAdmin: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['success', 'error', 'message'],
          properties: {
            success: { const: false },
            error: { type: 'string', examples: ['validation_failed', 'not_found', 'rate_limited'] },
            message: { type: 'string' },
            errors: {
              type: 'array',
              items: {
                type: 'object',
                properties: { field: { type: 'string' }, message: { type: 'string' } },
              },
            },
          },
        },
        Application: {
          type: 'object',
          properties: {
            success: { const: true },
            app_id: { type: 'string', format: 'uuid' },
            app_name: { type: 'string' },
            master_key: { type: ['string', 'null'], description: 'mk_…, shown once' },
            created_at: { type: 'string', format: 'date-time' },
          },
        },
        Identity: {
          type: 'object',
          properties: {
            success: { const: true },
            uuid: { type: 'string', format: 'uuid' },
            subdomain: { type: 'string' },
            full_domain: { type: 'string' },
            url: { type: 'string', format: 'uri' },
            email: { type: 'string' },
            organization_name: { type: 'string' },
            onboarding_status: { enum: ['pending', 'activated', 'completed'] },
          },
        },
        Metadata: {
          type: 'object',
          properties: {
            created_at: { type: 'string', format: 'date-time' },
            updated_at: { type: 'string', format: 'date-time' },
            dns_configured: { type: 'boolean' },
            ssl_configured: { type: 'boolean' },
            infrastructure_status: { enum: ['pending', 'partial', 'ready', 'failed'] },
            api_key_generated: { type: 'boolean' },
            provisioning_attempts: { type: 'integer' },
            is_idempotent: { type: 'boolean' },
          },
        },
        StartResponse: ref('Identity'),
        ProvisionResponse: {
          allOf: [
            ref('Identity'),
            {
              type: 'object',
              properties: {
                api_key: { type: ['string', 'null'], description: 'ak_…, shown once' },
                api_secret: { type: ['string', 'null'], description: 'as_…, shown once' },
                metadata: ref('Metadata'),
              },
            },
          ],
        },
        StatusResponse: {
          allOf: [
            ref('Identity'),
            {
              type: 'object',
              properties: {
                tenant_id: { type: ['string', 'null'] },
                completed_at: { type: ['string', 'null'], format: 'date-time' },
                metadata: ref('Metadata'),
              },
            },
          ],
        },
        CompleteResponse: {
          type: 'object',
          properties: {
            success: { const: true },
            message: { type: 'string' },
            uuid: { type: 'string', format: 'uuid' },
            onboarding_status: { const: 'completed' },
            tenant_id: { type: 'string' },
            completed_at: { type: 'string', format: 'date-time' },
          },
        },
      },
    },
  };
}
