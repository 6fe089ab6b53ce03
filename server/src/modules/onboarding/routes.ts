/**
 * The REST routes of the integration guide (CONTRACT.md section 5), verbatim: snake_case JSON,
 * `X-Master-Key`, 201/200/400/401/403/404/409/422/429/500, `Retry-After` and
 * `X-RateLimit-Remaining`, `Idempotency-Key` on every POST. Same services as GraphQL.
 *
 * Order of checks: the per-address limit (before authentication, so key guessing is limited
 * too), the caller (401/403), the method, the body (400), the Idempotency-Key (replay, 409,
 * 422), then the operation with its own limit (429) and validation (422).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deps } from '../../context.js';
import { ConflictError, NotFoundError, ValidationError } from '../../errors.js';
import { clientAddress } from '../../http/client-address.js';
import { decodePathSegment, isNestedDeeperThan, MAX_JSON_DEPTH } from '../../http/input.js';
import { MAX_BODY_BYTES, sendJson } from '../../http/security.js';
import { CONTROL_CHARACTER_MESSAGE, findControlCharacter } from '../../text-input.js';
import { DOCS_PATH, serveDocs } from './docs.js';
import { OnboardingProvisioningFailedError, RateLimitExceeded } from './errors.js';
import { fingerprint, parseIdempotencyKey } from './idempotency.js';
import type { RateState } from './limits.js';
import { openApiDocument } from './openapi.js';
import {
  onboardingMetadata,
  presentComplete,
  presentProvision,
  presentStart,
  presentStatus,
} from './present.js';
import {
  isUuid,
  parseInput,
  provisionBody,
  registerApplicationBody,
  validateComplete,
  validateStart,
} from './validation.js';

export type Method = 'GET' | 'POST';

/** Every route this module serves; the OpenAPI document must describe each (a test checks). */
export const ONBOARDING_ROUTES: readonly { method: Method; path: string }[] = [
  { method: 'POST', path: '/api/v1/applications/register' },
  { method: 'POST', path: '/api/v1/onboarding/start' },
  { method: 'POST', path: '/api/v1/onboarding/provision' },
  { method: 'GET', path: '/api/v1/onboarding/status/{uuid}' },
  { method: 'POST', path: '/api/v1/onboarding/{uuid}/complete' },
  { method: 'GET', path: '/api/v1/openapi.json' },
  { method: 'GET', path: DOCS_PATH },
];

interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const matchers = ONBOARDING_ROUTES.map((route) => ({
  ...route,
  pattern: new RegExp(`^${route.path.replace('{uuid}', '([^/]+)')}$`),
}));

/** @returns false when the path is not one of these routes. */
export async function handleOnboardingRoute(
  deps: Deps,
  pathname: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  if (serveDocs(pathname, req, res)) return true;
  const matches = matchers
    .map((route) => ({ route, match: route.pattern.exec(pathname) }))
    .filter((candidate) => candidate.match !== null);
  if (matches.length === 0) return false;
  const found = matches.find((candidate) => candidate.route.method === req.method);
  if (!found) {
    sendJson(
      res,
      405,
      { success: false, error: 'method_not_allowed', message: `Use ${matches[0]?.route.method}` },
      { Allow: matches.map((candidate) => candidate.route.method).join(', ') },
    );
    return true;
  }
  const { route, match } = found;
  if (route.path === '/api/v1/openapi.json') {
    sendJson(res, 200, openApiDocument(deps.config.publicUrl));
    return true;
  }
  // Malformed percent-encoding is no uuid: the routes that take one answer 400 invalid_uuid.
  const param = decodePathSegment(match?.[1] ?? '') ?? '';
  const ip = clientAddress(req, deps.config.trustedProxies);
  const log = deps.logger.child({ route: `${route.method} ${route.path}` });
  let rate: RateState | undefined;
  try {
    rate = await deps.onboarding.limits.take('ip', ip ?? 'unknown');
    const reply = await dispatch(deps, route.path, param, req, ip);
    const remaining = Math.min(rate.remaining, reply.rate?.remaining ?? Number.POSITIVE_INFINITY);
    send(res, reply, { 'X-RateLimit-Remaining': String(remaining) });
    log.debug({ status: reply.status }, 'onboarding request');
  } catch (error) {
    const reply = errorReply(error);
    if (reply.status === 500) log.error({ err: error }, 'onboarding request failed');
    else log.debug({ status: reply.status }, 'onboarding request refused');
    send(res, reply, rate && reply.status !== 429 ? { 'X-RateLimit-Remaining': String(rate.remaining) } : {});
  }
  return true;
}

function send(res: ServerResponse, reply: Reply, extra: Record<string, string>): void {
  sendJson(res, reply.status, reply.body, { ...extra, ...reply.headers });
}

async function dispatch(
  deps: Deps,
  path: string,
  param: string,
  req: IncomingMessage,
  ip: string | null,
): Promise<Reply & { rate?: RateState }> {
  if (path === '/api/v1/applications/register') {
    // The guide leaves this route's caller open: registering applications is a platform
    // operator's act, so it takes a super-admin access token (docs/decisions/010).
    const viewer = await deps.auth.viewerFromAuthorization(req.headers.authorization);
    if (!viewer) {
      throw new HttpError(
        401,
        'unauthenticated',
        'Send a super-admin access token as Authorization: Bearer …',
        {
          'WWW-Authenticate': 'Bearer',
        },
      );
    }
    if (viewer.role !== 'SUPER_ADMIN') throw new HttpError(403, 'forbidden', 'Super-admins only');
    const body = await readJsonObject(req);
    return idempotent(deps, `user:${viewer.userId}`, req, path, body, async () => {
      const { app_name: name } = parseInput(registerApplicationBody, {
        app_name: body.app_name ?? body.name,
      });
      const issued = await deps.applications.register(name, { userId: viewer.userId, ip });
      return {
        status: 201,
        body: {
          success: true,
          app_id: issued.application.id,
          app_name: issued.application.name,
          master_key: issued.masterKey,
          created_at: issued.application.createdAt.toISOString(),
        },
      };
    });
  }

  const app = await deps.applications.authenticate(req.headers['x-master-key']);
  if (!app) {
    throw new HttpError(
      401,
      'unauthenticated',
      req.headers['x-master-key'] ? 'Invalid or revoked master key' : 'Send your master key as X-Master-Key',
    );
  }
  const service = deps.onboarding;
  const meta = { ip };

  if (path === '/api/v1/onboarding/status/{uuid}') {
    if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', 'The uuid in the path must be a UUID');
    const { onboarding, rate } = await service.status(app, param.toLowerCase());
    return { status: 200, body: presentStatus(service, onboarding), rate };
  }

  const body = await readJsonObject(req);
  return idempotent(
    deps,
    `application:${app.applicationId}`,
    req,
    path.replace('{uuid}', param),
    body,
    async () => {
      switch (path) {
        case '/api/v1/onboarding/start': {
          const input = validateStart(body);
          const { onboarding, rate } = await service.start(app, input, meta);
          return { status: 201, body: presentStart(service, onboarding), rate };
        }
        case '/api/v1/onboarding/provision': {
          const { uuid, generate_api_key: generate } = parseInput(provisionBody, body);
          try {
            const result = await service.provision(app, uuid, generate, meta);
            return { status: 200, body: presentProvision(service, result), rate: result.rate ?? undefined };
          } catch (error) {
            if (!(error instanceof OnboardingProvisioningFailedError)) throw error;
            const onboarding = await service.find(app, uuid);
            return {
              status: 500,
              body: {
                success: false,
                error: 'provisioning_failed',
                message: error.message,
                step: error.step,
                uuid,
                onboarding_status: onboarding.status,
                metadata: onboardingMetadata(onboarding, false),
              },
            };
          }
        }
        default: {
          if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', 'The uuid in the path must be a UUID');
          const input = validateComplete(body);
          const onboarding = await service.complete(app, param.toLowerCase(), input, meta);
          return { status: 200, body: presentComplete(onboarding) };
        }
      }
    },
  );
}

/** Runs `operation` under the request's Idempotency-Key, if it has one. */
async function idempotent(
  deps: Deps,
  owner: string,
  req: IncomingMessage,
  path: string,
  body: Record<string, unknown>,
  operation: () => Promise<Reply & { rate?: RateState }>,
): Promise<Reply & { rate?: RateState }> {
  const header = req.headers['idempotency-key'];
  if (header === undefined) return operation();
  const key = typeof header === 'string' ? parseIdempotencyKey(header) : null;
  if (!key)
    throw new HttpError(
      400,
      'invalid_idempotency_key',
      'Idempotency-Key must be 1 to 255 visible ASCII characters',
    );
  const store = deps.idempotency;
  const begun = await store.begin(owner, key, fingerprint('POST', path, body));
  if (begun.kind === 'mismatch') {
    throw new HttpError(422, 'idempotency_key_reused', 'This Idempotency-Key was used with another request');
  }
  if (begun.kind === 'in_progress') {
    throw new HttpError(
      409,
      'idempotency_key_in_use',
      'A request with this Idempotency-Key is still being processed',
      {
        'Retry-After': '1',
      },
    );
  }
  if (begun.kind === 'replay') {
    return { status: begun.status, body: begun.body, headers: { 'Idempotent-Replayed': 'true' } };
  }
  let reply: Reply & { rate?: RateState };
  try {
    reply = await operation();
  } catch (error) {
    const refused = errorReply(error);
    await store.finish(owner, key, refused.status, refused.body);
    throw error;
  }
  await store.finish(owner, key, reply.status, reply.body);
  return reply;
}

function errorReply(error: unknown): Reply {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: { success: false, error: error.code, message: error.message },
      headers: error.headers,
    };
  }
  if (error instanceof ValidationError) {
    return {
      status: 422,
      body: {
        success: false,
        error: 'validation_failed',
        message: error.message,
        errors: error.fields.map((field) => ({ field: field.path.join('.'), message: field.message })),
      },
    };
  }
  if (error instanceof NotFoundError) {
    return {
      status: 404,
      body: {
        success: false,
        error: 'not_found',
        message: 'No onboarding with this uuid for this application',
      },
    };
  }
  if (error instanceof ConflictError) {
    return { status: 409, body: { success: false, error: 'conflict', message: error.message } };
  }
  if (error instanceof RateLimitExceeded) {
    return {
      status: 429,
      body: {
        success: false,
        error: 'rate_limited',
        message: `Too many requests; retry in ${error.retryAfterSeconds} s`,
        retry_after: error.retryAfterSeconds,
      },
      headers: {
        'Retry-After': String(error.retryAfterSeconds),
        'X-RateLimit-Limit': String(error.max),
        'X-RateLimit-Remaining': '0',
      },
    };
  }
  return { status: 500, body: { success: false, error: 'internal_error', message: 'Internal error' } };
}

/** The request's JSON object body. @throws HttpError 400 */
async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(400, 'invalid_request', 'Send a JSON body with Content-Type: application/json');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(400, 'invalid_request', 'The body is too large');
    chunks.push(chunk as Buffer);
  }
  let parsed: unknown;
  try {
    // Fatal: bytes that are not UTF-8 are refused, not silently replaced.
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
  } catch {
    throw new HttpError(400, 'invalid_json', 'The body is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new HttpError(400, 'invalid_request', 'The body must be a JSON object');
  }
  // Before anything walks it (validation, the Idempotency-Key fingerprint): deep JSON would
  // overflow their stacks.
  if (isNestedDeeperThan(parsed)) {
    throw new HttpError(400, 'invalid_json', `The body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  }
  const invalid = findControlCharacter(parsed);
  if (invalid) throw new ValidationError([{ path: invalid, message: CONTROL_CHARACTER_MESSAGE }]);
  return parsed as Record<string, unknown>;
}
