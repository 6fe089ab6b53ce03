import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json; charset=utf-8',
};

/**
 * Serves the built console (a single-page app): files under `root`, and index.html for any
 * other GET that accepts HTML so client-side routes survive a reload.
 * @returns false when nothing was served.
 */
export function serveConsole(
  root: string,
  pathname: string,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const index = join(root, 'index.html');
  if (!existsSync(index)) return false;

  let relative: string;
  try {
    relative = normalize(decodeURIComponent(pathname)).replace(/^([/\\])+/, '');
  } catch {
    return false;
  }
  const file = join(root, relative || 'index.html');
  const inside = file === root || file.startsWith(root + sep);
  if (inside && existsSync(file) && statSync(file).isFile()) {
    // Vite fingerprints everything under assets/, so those never change.
    const immutable = relative.startsWith(`assets${sep}`);
    send(res, file, immutable ? 'public, max-age=31536000, immutable' : 'no-cache', req.method === 'HEAD');
    return true;
  }
  if (!(req.headers.accept ?? '').includes('text/html')) return false;
  send(res, index, 'no-cache', req.method === 'HEAD');
  return true;
}

/**
 * Serves the console's index.html whatever the request accepts (`GET /verify-email` from an
 * e-mail: curl and mail scanners accept any type). Never stored: the URL carries a token.
 * @returns false when the console is not built.
 */
export function serveConsolePage(root: string, req: IncomingMessage, res: ServerResponse): boolean {
  const index = join(root, 'index.html');
  if (!existsSync(index)) return false;
  send(res, index, 'no-store', req.method === 'HEAD');
  return true;
}

function send(res: ServerResponse, file: string, cacheControl: string, headOnly: boolean): void {
  res.writeHead(200, {
    'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': statSync(file).size,
    'Cache-Control': cacheControl,
  });
  if (headOnly) res.end();
  else createReadStream(file).pipe(res);
}
