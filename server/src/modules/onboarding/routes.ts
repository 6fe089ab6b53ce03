/**
 * The onboarding REST routes (README, "Onboarding service"; docs/decisions/010): snake_case JSON,
 * `X-Master-Key`, 201/200/400/401/403/404/409/422/429/500, `Retry-After` and
 * `X-RateLimit-Remaining`, `Idempotency-Key` on every POST. Same services as GraphQL.
 *
 * Order of checks: the per-address limit (before authentication, so key guessing is limited
 * too), the caller (401/403), the method, the body (400), the Idempotency-Key (replay, 409,
 * 422), then the operation with its own limit (429) and validation (422).
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deps } from '../../context.js';
import { NotFoundError } from '../../errors.js';
import { clientAddress } from '../../http/client-address.js';
import { decodePathSegment } from '../../http/input.js';
import { type Language, preferredLanguage, say, type Text } from '../../http/language.js';
import {
  errorReply,
  HttpError,
  parseJsonObject,
  type Reply,
  readJsonObject,
  readRawBody,
  sendReply,
} from '../../http/rest.js';
import { sendJson } from '../../http/security.js';
import { isUuid } from '../../ids.js';
import { presentEndpoint } from '../webhooks/present.js';
import { API_KEY_HEADER, ApiSignatureError, type TenantPrincipal } from './api-credentials.js';
import { DOCS_PATH, serveDocs } from './docs.js';
import { OnboardingProvisioningFailedError } from './errors.js';
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
  parseInput,
  provisionBody,
  registerApplicationBody,
  validateComplete,
  validateStart,
} from './validation.js';

export type Method = 'GET' | 'POST' | 'DELETE';

/** Every route this module serves; the OpenAPI document must describe each (a test checks). */
export const ONBOARDING_ROUTES: readonly { method: Method; path: string }[] = [
  { method: 'POST', path: '/api/v1/applications/register' },
  { method: 'POST', path: '/api/v1/onboarding/start' },
  { method: 'POST', path: '/api/v1/onboarding/provision' },
  { method: 'GET', path: '/api/v1/onboarding/status/{uuid}' },
  { method: 'POST', path: '/api/v1/onboarding/{uuid}/complete' },
  { method: 'POST', path: '/api/v1/onboarding/{uuid}/api-key' },
  { method: 'DELETE', path: '/api/v1/onboarding/{uuid}/api-key' },
  { method: 'POST', path: '/api/v1/webhooks' },
  { method: 'GET', path: '/api/v1/webhooks' },
  { method: 'DELETE', path: '/api/v1/webhooks/{uuid}' },
  { method: 'GET', path: '/api/v1/openapi.json' },
  { method: 'GET', path: DOCS_PATH },
];

const INVALID_PATH_UUID: Text = {
  en: 'The uuid in the path must be a UUID',
  fr: "L'uuid du chemin doit être un UUID",
};
/** The French wording integrators were given (README, "Onboarding service"); English otherwise. */
const COMPLETED: Text = {
  en: 'Onboarding marked as completed',
  fr: 'Onboarding marqué comme complété avec succès',
};

/** What a NOT_FOUND of these routes says: the only thing they look up is an onboarding. */
const NO_ONBOARDING: Text = {
  en: 'No onboarding with this uuid for this application',
  fr: 'Aucun onboarding avec cet uuid pour cette application',
};

/** The services these routes use. */
export type OnboardingRouteDeps = Pick<
  Deps,
  'config' | 'logger' | 'auth' | 'applications' | 'onboarding' | 'idempotency' | 'webhooks'
>;

const API_KEY_PATH = '/api/v1/onboarding/{uuid}/api-key';
const WEBHOOKS_PATH = '/api/v1/webhooks';

const matchers = ONBOARDING_ROUTES.map((route) => ({
  ...route,
  pattern: new RegExp(`^${route.path.replace('{uuid}', '([^/]+)')}$`),
}));

/** @returns false when the path is not one of these routes. */
export async function handleOnboardingRoute(
  deps: OnboardingRouteDeps,
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
    const allowed = matches.map((candidate) => candidate.route.method).join(', ');
    const { message, language } = say(
      { en: `Use ${allowed}`, fr: `Utilisez ${allowed}` },
      preferredLanguage(req),
    );
    sendJson(
      res,
      405,
      { success: false, error: 'method_not_allowed', message },
      { Allow: allowed, 'Content-Language': language },
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
  const lang = preferredLanguage(req);
  let rate: RateState | undefined;
  try {
    rate = await deps.onboarding.limits.take('ip', ip ?? 'unknown');
    const reply = await dispatch(deps, route.path, param, req, ip, lang);
    const remaining = Math.min(rate.remaining, reply.rate?.remaining ?? Number.POSITIVE_INFINITY);
    sendReply(res, reply, { 'X-RateLimit-Remaining': String(remaining) });
    log.debug({ status: reply.status }, 'onboarding request');
  } catch (error) {
    const reply = errorReply(error, lang, { notFound: NO_ONBOARDING });
    if (reply.status === 500) log.error({ err: error }, 'onboarding request failed');
    else log.debug({ status: reply.status }, 'onboarding request refused');
    sendReply(
      res,
      reply,
      rate && reply.status !== 429 ? { 'X-RateLimit-Remaining': String(rate.remaining) } : {},
    );
  }
  return true;
}

async function dispatch(
  deps: OnboardingRouteDeps,
  path: string,
  param: string,
  req: IncomingMessage,
  ip: string | null,
  lang: Language,
): Promise<Reply & { rate?: RateState }> {
  if (path === '/api/v1/applications/register') {
    // The guide leaves this route's caller open: registering applications is a platform
    // operator's act, so it takes a super-admin access token (docs/decisions/010).
    const viewer = await deps.auth.viewerFromAuthorization(req.headers.authorization);
    if (!viewer) {
      throw new HttpError(
        401,
        'unauthenticated',
        {
          en: 'Send a super-admin access token as Authorization: Bearer …',
          fr: "Envoyez le jeton d'accès d'un super-administrateur : Authorization: Bearer …",
        },
        { 'WWW-Authenticate': 'Bearer' },
      );
    }
    if (viewer.role !== 'SUPER_ADMIN')
      throw new HttpError(403, 'forbidden', {
        en: 'Super-admins only',
        fr: 'Réservé aux super-administrateurs',
      });
    const body = await readJsonObject(req);
    return idempotent(deps, `user:${viewer.userId}`, req, path, body, lang, async () => {
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

  if (req.headers[API_KEY_HEADER] !== undefined) return tenantDispatch(deps, path, param, req, ip, lang);
  if (path.startsWith(WEBHOOKS_PATH)) {
    throw new HttpError(401, 'unauthenticated', {
      en: 'Sign the request with API credentials: X-Api-Key, X-Onramp-Timestamp, X-Onramp-Signature',
      fr: "Signez la requête avec les identifiants d'API : X-Api-Key, X-Onramp-Timestamp, X-Onramp-Signature",
    });
  }

  const app = await deps.applications.authenticate(req.headers['x-master-key']);
  if (!app) {
    throw new HttpError(
      401,
      'unauthenticated',
      req.headers['x-master-key']
        ? { en: 'Invalid or revoked master key', fr: 'Master key invalide ou révoquée' }
        : { en: 'Send your master key as X-Master-Key', fr: 'Envoyez votre master key dans X-Master-Key' },
    );
  }
  const service = deps.onboarding;
  const meta = { ip };

  if (path === '/api/v1/onboarding/status/{uuid}') {
    if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', INVALID_PATH_UUID);
    const { onboarding, rate } = await service.status(app, param.toLowerCase());
    return { status: 200, body: presentStatus(service, onboarding), rate };
  }

  if (path === API_KEY_PATH) {
    if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', INVALID_PATH_UUID);
    const uuid = param.toLowerCase();
    const actor = { userId: null, ip };
    if (req.method === 'DELETE') {
      await service.credentials.revoke(app, uuid, actor);
      return { status: 200, body: { success: true, uuid, api_key_generated: false } };
    }
    return idempotent(
      deps,
      `application:${app.applicationId}`,
      req,
      path.replace('{uuid}', uuid),
      {},
      lang,
      async () => {
        const rotated = await service.credentials.rotate(app, uuid, actor);
        return {
          status: 200,
          body: {
            success: true,
            uuid,
            api_key: rotated.apiKey,
            api_secret: rotated.apiSecret,
            api_key_generated: true,
          },
        };
      },
    );
  }

  const body = await readJsonObject(req);
  return idempotent(
    deps,
    `application:${app.applicationId}`,
    req,
    path.replace('{uuid}', param),
    body,
    lang,
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
              language: 'en',
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
          if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', INVALID_PATH_UUID);
          const input = validateComplete(body);
          const onboarding = await service.complete(app, param.toLowerCase(), input, meta);
          const { message, language } = say(COMPLETED, lang);
          return { status: 200, body: presentComplete(onboarding, message), language };
        }
      }
    },
  );
}

/**
 * A request signed with an onboarding's API credentials (api-credentials.ts): its own status,
 * and nothing an application's master key is needed for.
 */
async function tenantDispatch(
  deps: OnboardingRouteDeps,
  path: string,
  param: string,
  req: IncomingMessage,
  ip: string | null,
  lang: Language,
): Promise<Reply & { rate?: RateState }> {
  const raw = await readRawBody(req);
  let tenant: TenantPrincipal;
  try {
    tenant = await deps.onboarding.credentials.authenticate(
      req.headers,
      req.method ?? 'GET',
      req.url ?? path,
      raw,
    );
  } catch (error) {
    if (error instanceof ApiSignatureError)
      throw new HttpError(401, 'invalid_signature', { en: error.message });
    throw error;
  }
  if (path === '/api/v1/onboarding/status/{uuid}') {
    if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', INVALID_PATH_UUID);
    // Another onboarding, even of the same application, is not the tenant's to see.
    if (param.toLowerCase() !== tenant.onboardingId) throw new NotFoundError('onboarding');
    const { onboarding, rate } = await deps.onboarding.status(tenant, tenant.onboardingId);
    return { status: 200, body: presentStatus(deps.onboarding, onboarding), rate };
  }
  if (path.startsWith(WEBHOOKS_PATH)) return webhookRoute(deps, path, param, req, raw, tenant, ip, lang);
  throw new HttpError(403, 'forbidden', {
    en: "API credentials reach their onboarding's status and webhooks only; this route takes the master key",
    fr: "Les identifiants d'API n'ouvrent que le statut et les webhooks de leur onboarding ; cette route demande la master key",
  });
}

/**
 * The application's webhook endpoints (modules/webhooks), reached with any of its tenants' API
 * credentials: endpoints belong to the application, since `onboarding.provisioned` fires before
 * a tenant has credentials (docs/decisions/052).
 */
async function webhookRoute(
  deps: OnboardingRouteDeps,
  path: string,
  param: string,
  req: IncomingMessage,
  raw: Buffer,
  tenant: TenantPrincipal,
  ip: string | null,
  lang: Language,
): Promise<Reply> {
  const actor = { userId: null, onboardingId: tenant.onboardingId, ip };
  if (path === `${WEBHOOKS_PATH}/{uuid}`) {
    if (!isUuid(param)) throw new HttpError(400, 'invalid_uuid', INVALID_PATH_UUID);
    try {
      await deps.webhooks.deleteEndpoint(tenant.applicationId, param.toLowerCase(), actor);
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      throw new HttpError(404, 'not_found', {
        en: 'No webhook endpoint with this id for this application',
        fr: 'Aucun endpoint de webhook avec cet id pour cette application',
      });
    }
    return { status: 200, body: { success: true, id: param.toLowerCase(), deleted: true } };
  }
  if (req.method === 'GET') {
    const endpoints = await deps.webhooks.listEndpoints(tenant.applicationId);
    return { status: 200, body: { success: true, webhooks: endpoints.map(presentEndpoint) } };
  }
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(400, 'invalid_request', {
      en: 'Send a JSON body with Content-Type: application/json',
      fr: 'Envoyez un corps JSON avec Content-Type: application/json',
    });
  }
  const body = parseJsonObject(raw);
  return idempotent(deps, `onboarding:${tenant.onboardingId}`, req, path, body, lang, async () => {
    const created = await deps.webhooks.createEndpoint(
      tenant.applicationId,
      { url: body.url, events: body.events },
      actor,
    );
    return {
      status: 201,
      body: { success: true, ...presentEndpoint(created.endpoint), secret: created.secret },
    };
  });
}

/** Runs `operation` under the request's Idempotency-Key, if it has one. */
async function idempotent(
  deps: OnboardingRouteDeps,
  owner: string,
  req: IncomingMessage,
  path: string,
  body: Record<string, unknown>,
  lang: Language,
  operation: () => Promise<Reply & { rate?: RateState }>,
): Promise<Reply & { rate?: RateState }> {
  const header = req.headers['idempotency-key'];
  if (header === undefined) return operation();
  const key = typeof header === 'string' ? parseIdempotencyKey(header) : null;
  if (!key)
    throw new HttpError(400, 'invalid_idempotency_key', {
      en: 'Idempotency-Key must be 1 to 255 visible ASCII characters',
      fr: "L'Idempotency-Key doit compter de 1 à 255 caractères ASCII visibles",
    });
  const store = deps.idempotency;
  const begun = await store.begin(owner, key, fingerprint('POST', path, body));
  if (begun.kind === 'mismatch') {
    throw new HttpError(422, 'idempotency_key_reused', {
      en: 'This Idempotency-Key was used with another request',
      fr: 'Cette Idempotency-Key a servi à une autre requête',
    });
  }
  if (begun.kind === 'in_progress') {
    throw new HttpError(
      409,
      'idempotency_key_in_use',
      {
        en: 'A request with this Idempotency-Key is still being processed',
        fr: 'Une requête avec cette Idempotency-Key est encore en cours',
      },
      { 'Retry-After': '1' },
    );
  }
  if (begun.kind === 'replay') {
    return { status: begun.status, body: begun.body, headers: { 'Idempotent-Replayed': 'true' } };
  }
  let reply: Reply & { rate?: RateState };
  try {
    reply = await operation();
  } catch (error) {
    const refused = errorReply(error, lang, { notFound: NO_ONBOARDING });
    await store.finish(owner, key, refused.status, refused.body);
    throw error;
  }
  await store.finish(owner, key, reply.status, reply.body);
  return reply;
}
