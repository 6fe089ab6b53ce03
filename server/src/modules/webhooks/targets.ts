/**
 * Where a webhook may be sent. An endpoint URL is the caller's input, and Onramp's server sits
 * next to things an integrator must not reach through it (the central PostgreSQL, cloud metadata
 * at 169.254.169.254, internal admin ports): loopback, private, link-local, shared, multicast and
 * reserved addresses are refused, both when the URL is registered (an address literal) and at
 * every delivery, on the addresses the name resolves to then (a name can be re-pointed after
 * registration: DNS rebinding). The connection goes to the address that was checked (the
 * `lookup` below), not to a second resolution.
 *
 * WEBHOOK_ALLOW_PRIVATE_TARGETS=1 (refused in production) lifts the address rule for a local
 * receiver; production also requires https.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

/** Whether `address` (an IP literal) is one webhooks must not reach. */
export function isPrivateAddress(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1];
  if (mapped) return blocked.check(mapped, 'ipv4');
  const family = isIP(bare);
  if (family === 4) return blocked.check(bare, 'ipv4');
  if (family === 6) return blocked.check(bare, 'ipv6') || /^::ffff:/i.test(bare);
  return false;
}

export interface TargetRules {
  /** https only. */
  requireHttps: boolean;
  /** Loopback, private and link-local addresses allowed (a local receiver in development). */
  allowPrivate: boolean;
}

/**
 * Why `raw` cannot be an endpoint URL, or null when it can (the address rule is checked again,
 * on resolved addresses, at each delivery).
 */
export function targetProblem(raw: string, rules: TargetRules): string | null {
  if (raw.length > 2048) return 'must be at most 2048 characters';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.protocol !== 'https:' && (rules.requireHttps || url.protocol !== 'http:')) {
    return rules.requireHttps ? 'must be an https:// URL' : 'must be an http(s):// URL';
  }
  // They would be stored and sent in clear; the signature is how the receiver authenticates us.
  if (url.username || url.password) return 'must not carry a user name or password';
  if (url.hash) return 'must not have a #fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!rules.allowPrivate) {
    if (isPrivateAddress(host)) return 'must not point at a loopback, private or reserved address';
    if (host === 'localhost' || host.endsWith('.localhost') || !host.includes('.')) {
      return 'must be a public host name';
    }
  }
  return null;
}

/** A delivery refused because its host resolved to a private address. */
export class BlockedTargetError extends Error {
  constructor(readonly address: string) {
    super(`the host resolves to a loopback, private or reserved address (${address})`);
    this.name = 'BlockedTargetError';
  }
}

/**
 * A `lookup` for http.request that resolves like node does, then refuses the connection when any
 * resolved address is private (unless `allowPrivate`).
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error, '', 0);
      const refused = allowPrivate ? undefined : addresses.find((entry) => isPrivateAddress(entry.address));
      if (refused) return callback(new BlockedTargetError(refused.address), '', 0);
      if (options.all)
        return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`no address for ${hostname}`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}
