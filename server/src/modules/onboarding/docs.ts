/**
 * GET /api/v1/docs: the OpenAPI document in Redoc, served from the npm package's standalone
 * bundle (no CDN, docs/decisions/046: not even for its logo). The bundle's URL carries Redoc's version, so it is cached
 * for good, and it is gzipped once, on first use.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';

const require = createRequire(import.meta.url);
const REDOC_VERSION = (require('redoc/package.json') as { version: string }).version;
export const DOCS_PATH = '/api/v1/docs';
export const REDOC_BUNDLE_PATH = `/api/v1/docs/redoc-${REDOC_VERSION}.js`;

/** Redoc styles with styled-components (inline styles) and runs its search in a blob: worker. */
const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "worker-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
].join('; ');

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Onramp onboarding API</title>
<link rel="icon" href="data:,">
</head>
<body>
<redoc spec-url="/api/v1/openapi.json"></redoc>
<script src="${REDOC_BUNDLE_PATH}"></script>
</body>
</html>
`;

let bundle: { plain: Buffer; gzip: Buffer } | undefined;

/**
 * Redoc's attribution draws its logo from Redocly's CDN, which the page's policy refuses (a
 * console error in every browser) and an offline network cannot reach: a mark of our own instead,
 * inline. The attribution's text and link stay.
 */
const CDN_LOGO = 'https://cdn.redoc.ly/redoc/logo-mini.svg';
const INLINE_LOGO = `data:image/svg+xml,${encodeURIComponent(
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#8a8a8a"/></svg>',
)}`;

function redocBundle(): { plain: Buffer; gzip: Buffer } {
  if (!bundle) {
    const source = readFileSync(require.resolve('redoc/bundles/redoc.standalone.js'), 'utf8');
    // A Redoc without the CDN logo (a new version) needs nothing replaced.
    const plain = Buffer.from(source.replaceAll(CDN_LOGO, INLINE_LOGO));
    bundle = { plain, gzip: gzipSync(plain) };
  }
  return bundle;
}

/** @returns false when `pathname` is neither the page nor its bundle. */
export function serveDocs(pathname: string, req: IncomingMessage, res: ServerResponse): boolean {
  if (pathname !== DOCS_PATH && pathname !== REDOC_BUNDLE_PATH) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET', 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ success: false, error: 'method_not_allowed', message: 'Use GET' }));
    return true;
  }
  res.setHeader('Content-Security-Policy', DOCS_CSP);
  if (pathname === DOCS_PATH) {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : PAGE);
    return true;
  }
  const { plain, gzip } = redocBundle();
  const gzipped = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzipped ? gzip : plain;
  res.writeHead(200, {
    'Content-Type': 'text/javascript; charset=utf-8',
    'Content-Length': body.length,
    'Cache-Control': 'public, max-age=31536000, immutable',
    Vary: 'Accept-Encoding',
    ...(gzipped ? { 'Content-Encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
