/**
 * The address a request came from, for rate limits, lockouts and the audit log. Behind reverse
 * proxies the socket's peer is the last proxy, so every caller would share one budget (and one
 * lockout); each trusted proxy appends the address it saw to X-Forwarded-For. With
 * TRUSTED_PROXIES = n, the client is the n-th address from the right of that chain, the socket's
 * peer being the rightmost. Entries further left were written by the client and are never
 * believed, so spoofing X-Forwarded-For cannot buy a fresh budget.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export function clientAddress(req: IncomingMessage, trustedProxies: number): string | null {
  const peer = normalise(req.socket.remoteAddress ?? null);
  if (trustedProxies === 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  const chain = [...forwarded, peer];
  // Fewer entries than trusted proxies: the leftmost one is the furthest any proxy saw.
  const chosen = normalise(chain[Math.max(0, chain.length - 1 - trustedProxies)] ?? null);
  return chosen !== null && isIP(chosen) ? chosen : peer;
}

/** `::ffff:203.0.113.7` (IPv4 on a dual-stack socket) is the IPv4 address itself. */
function normalise(address: string | null): string | null {
  return address?.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
