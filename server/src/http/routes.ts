/**
 * The HTTP route table: every path the server answers, in one list, each route with the services
 * it uses and nothing else. The request handler at the bottom applies what every route shares
 * (request id, security headers, the served-host check, the body size limit) and falls back to
 * the console.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Deps } from '../context.js';
import type { Config } from '../env.js';
import { mayScrapeMetrics } from '../metrics.js';
import { checkHealth } from '../modules/health/service.js';
import { handleOnboardingRoute, type OnboardingRouteDeps } from '../modules/onboarding/routes.js';
import { type AdminRouteDeps, handleAdminRoute } from './admin-routes.js';
import { GRAPHIQL_ASSETS_PATH, type GraphiQLAssets } from './graphiql.js';
import type { Yoga } from './graphql.js';
import { isServedHost } from './hosts.js';
import { preferredLanguage, say } from './language.js';
import { bodyTooLarge, sendJson, setSecurityHeaders } from './security.js';
import { serveConsole, serveConsolePage } from './static.js';

export interface HttpRoute {
  /** Whether this route serves `pathname`. */
  matches(pathname: string, req: IncomingMessage): boolean;
  /**
   * Answered under any Host: probes reach instances by address and learn nothing from it.
   * Everything else answers only under a name Onramp serves (DNS rebinding, hosts.ts).
   * @default false
   */
  anyHost?: boolean;
  /** Reads a request body: refused over the size limit before the handler runs. @default false */
  body?: boolean;
  handle(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    requestId: string,
  ): Promise<void> | void;
}

export interface RouteTableOptions {
  deps: Pick<Deps, 'config' | 'logger' | 'db' | 'startedAt' | 'events' | 'metrics'> &
    OnboardingRouteDeps &
    AdminRouteDeps;
  yoga: Yoga;
  graphiql: () => Promise<GraphiQLAssets>;
  consoleDir: string;
  stopping: () => boolean;
}

const exactly =
  (...paths: string[]) =>
  (pathname: string) =>
    paths.includes(pathname);

export function routeTable({ deps, yoga, graphiql, consoleDir, stopping }: RouteTableOptions): HttpRoute[] {
  const { config, metrics } = deps;
  const production = config.env === 'production';
  const routes: HttpRoute[] = [
    {
      matches: exactly('/healthz'),
      anyHost: true,
      handle: (_req, res) => sendJson(res, 200, { status: 'ok' }),
    },
    {
      matches: exactly('/readyz'),
      anyHost: true,
      handle: async (_req, res) => {
        if (stopping()) return sendJson(res, 503, { status: 'stopping' });
        const health = await checkHealth(deps);
        sendJson(res, health.status === 'OK' ? 200 : 503, {
          status: health.status.toLowerCase(),
          checks: health.checks,
          // Detail, not readiness: a clinic server down leaves the rest of Onramp serving.
          unreachableClinicServers: [...deps.db.servers.unreachable.values()].map(({ name, reason }) => ({
            name,
            reason,
          })),
        });
      },
    },
    {
      matches: exactly('/metrics'),
      handle: async (req, res) => {
        if (!mayScrapeMetrics(req.headers.authorization, config)) {
          const message = config.metricsToken
            ? 'Send the metrics token as Authorization: Bearer …'
            : 'Set METRICS_TOKEN to read metrics in production';
          return sendJson(res, 401, { error: 'unauthenticated', message }, { 'WWW-Authenticate': 'Bearer' });
        }
        res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
        res.end(await metrics.registry.metrics());
      },
    },
    {
      matches: exactly('/graphql', '/__yoga_health'),
      body: true,
      handle: async (req, res, _pathname, requestId) => {
        await yoga(req, res, { req, requestId });
      },
    },
    {
      matches: (pathname) => pathname.startsWith('/api/'),
      body: true,
      handle: async (req, res, pathname) => {
        if (await handleOnboardingRoute(deps, pathname, req, res)) return;
        if (await handleAdminRoute(deps, pathname, req, res)) return;
        const { message, language } = say(
          {
            en: `No route ${req.method} ${pathname}; the reference is at /api/v1/docs`,
            fr: `Aucune route ${req.method} ${pathname} ; la référence est sur /api/v1/docs`,
          },
          preferredLanguage(req),
        );
        sendJson(res, 404, { success: false, error: 'not_found', message }, { 'Content-Language': language });
      },
    },
    {
      matches: (pathname, req) =>
        pathname === '/verify-email' && (req.method === 'GET' || req.method === 'HEAD'),
      handle: (req, res) => {
        // The console's page verifies on a button press, never on this GET: mail scanners fetch
        // links to inspect them, and must not spend the token (README, "Console").
        if (serveConsolePage(consoleDir, req, res)) return;
        sendJson(res, 503, {
          error: 'console_unavailable',
          message: 'The console is not built; run pnpm build, then open this link again.',
        });
      },
    },
  ];
  if (!production) {
    routes.unshift({
      matches: (pathname) => pathname.startsWith(GRAPHIQL_ASSETS_PATH),
      handle: async (req, res, pathname) => {
        if (await (await graphiql()).serve(pathname, req, res)) return;
        sendJson(res, 404, { error: 'Not found' });
      },
    });
  }
  // Last: the console answers any other path (its client-side routes), then 404.
  routes.push({
    matches: () => true,
    handle: (req, res, pathname) => {
      if (serveConsole(consoleDir, pathname, req, res)) return;
      sendJson(res, 404, { error: 'Not found' });
    },
  });
  return routes;
}

const MISDIRECTED = {
  success: false,
  error: 'unknown_host',
  message: 'This server does not answer to that host name; see ALLOWED_HOSTS',
};

/** Answers one request by the first route of `routes` that matches it. */
export async function routeRequest(
  routes: readonly HttpRoute[],
  config: Config,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const requestId = validRequestId(req.headers['x-request-id']) ?? randomUUID();
  const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
  res.setHeader('X-Request-Id', requestId);
  setSecurityHeaders(res, pathname, config);
  const route = routes.find((candidate) => candidate.matches(pathname, req));
  if (!route) return sendJson(res, 404, { error: 'Not found' });
  if (!route.anyHost && !isServedHost(req.headers.host, config)) return sendJson(res, 421, MISDIRECTED);
  if (route.body && bodyTooLarge(req, res)) return;
  await route.handle(req, res, pathname, requestId);
}

function validRequestId(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' && /^[A-Za-z0-9._-]{8,64}$/.test(header) ? header : undefined;
}
