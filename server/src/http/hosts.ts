/**
 * The `Host` names Onramp answers to. A page on an attacker's domain can point that domain at
 * 127.0.0.1 (DNS rebinding) and call the API from a developer's browser as a same-origin page:
 * the browser then sends the attacker's name as `Host` (and as `Origin`), so comparing the two
 * proves nothing. Refusing every name Onramp does not serve closes that door; see the README's
 * security section.
 */
import { isIP } from 'node:net';
import type { Config } from '../env.js';

/**
 * Whether `host` (a `Host` header, with or without its port) is one Onramp serves: `localhost`
 * and names under it (browsers resolve those to loopback themselves), loopback addresses,
 * PUBLIC_URL's host and ALLOWED_HOSTS (`.example.com` covers the domain and its subdomains).
 */
export function isServedHost(
  host: string | undefined,
  config: Pick<Config, 'publicUrl' | 'allowedHosts'>,
): boolean {
  const name = hostName(host);
  if (name === null) return false;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isLoopback(name)) return true;
  if (name === hostName(new URL(config.publicUrl).host)) return true;
  return config.allowedHosts.some((allowed) =>
    allowed.startsWith('.') ? name === allowed.slice(1) || name.endsWith(allowed) : name === allowed,
  );
}

/** `Example.com.:4000` → `example.com`, `[::1]:4000` → `::1`; null when it is not a host. */
function hostName(header: string | undefined): string | null {
  if (!header || header.length > 300) return null;
  const bracketed = /^\[([0-9a-f:.]+)\](?::\d{1,5})?$/i.exec(header);
  if (bracketed) return isIP(bracketed[1] as string) === 6 ? (bracketed[1] as string).toLowerCase() : null;
  const match = /^([a-z0-9.-]+?)\.?(?::\d{1,5})?$/i.exec(header);
  return match ? (match[1] as string).toLowerCase() : null;
}

function isLoopback(name: string): boolean {
  if (isIP(name) === 4) return name.startsWith('127.');
  if (isIP(name) !== 6) return false;
  if (name === '::1' || name === '0:0:0:0:0:0:0:1') return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(name);
  return mapped !== null && (mapped[1] as string).startsWith('127.');
}
