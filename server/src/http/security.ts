import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../env.js';

/** Largest request body accepted; GraphQL operations and onboarding JSON are far smaller. */
export const MAX_BODY_BYTES = 1024 * 1024;

const CONSOLE_CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "style-src 'self' 'unsafe-inline'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ');

/**
 * GraphiQL's page and its files (http/graphiql.ts): scripts and Monaco's workers from this
 * origin only (no inline script); the bundle evaluates code and injects styles.
 */
const GRAPHIQL_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-eval'",
  "worker-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "font-src 'self' data:",
  "img-src 'self' data:",
  "connect-src 'self' ws: wss:",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

export function setSecurityHeaders(res: ServerResponse, pathname: string, config: Config): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  res.setHeader('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
  const graphiql = pathname === '/graphql' || pathname.startsWith('/graphql/');
  res.setHeader('Content-Security-Policy', graphiql ? GRAPHIQL_CSP : CONSOLE_CSP);
  if (config.env === 'production') {
    res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
  }
}

/**
 * Whether a browser at `origin` may call the API. The server's own origin always may; others
 * only when listed in CORS_ORIGINS. Requests without an Origin header (curl, servers) are not
 * browser cross-origin requests and are allowed.
 */
export function isAllowedOrigin(
  origin: string | null | undefined,
  host: string | undefined,
  config: Config,
): boolean {
  if (!origin) return true;
  if (config.corsOrigins.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Rejects bodies over {@link MAX_BODY_BYTES} before anything reads them. */
export function bodyTooLarge(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return false;
  const length = req.headers['content-length'];
  if (length === undefined) {
    if (req.headers['transfer-encoding']) {
      sendJson(res, 411, { error: 'Content-Length is required' });
      return true;
    }
    return false;
  }
  if (Number(length) > MAX_BODY_BYTES) {
    sendJson(res, 413, { error: `Request body exceeds ${MAX_BODY_BYTES} bytes` });
    req.resume();
    return true;
  }
  return false;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(payload),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(payload);
}
