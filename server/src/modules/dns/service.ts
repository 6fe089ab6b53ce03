/**
 * The DNS module's entry point for the rest of the server: the configured DnsProvider and the
 * built-in authoritative server.
 */
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import type { Logger } from '../../logger.js';
import { BuiltinDnsProvider } from './builtin.js';
import { CloudflareDnsProvider } from './cloudflare.js';
import type { DnsProvider } from './provider.js';
import { type DnsLimits, DnsServer } from './server.js';
import { ZoneCache } from './zone-cache.js';

export { BuiltinDnsProvider } from './builtin.js';
export { CloudflareDnsProvider, CloudflareError } from './cloudflare.js';
export * from './provider.js';
export { type DnsLimits, DnsServer } from './server.js';

/** The provider DNS_PROVIDER names. */
export function createDnsProvider(config: Config, prisma: CentralPrisma, logger: Logger): DnsProvider {
  if (config.dnsProvider === 'cloudflare') {
    if (!config.cloudflare) throw new Error('DNS_PROVIDER=cloudflare without its settings'); // env.ts refuses this
    return new CloudflareDnsProvider({ ...config.cloudflare, ingress: config.ingress, logger });
  }
  return new BuiltinDnsProvider(prisma, config.baseDomain, config.ingress);
}

/**
 * The built-in authoritative server for `provider`'s records, or undefined when there is none
 * to run: records published elsewhere (Cloudflare) or `port` false (DNS_PORT=0). It reads the
 * central database at `centralUrl` through a zone cache of its own.
 */
export function createDnsServer(
  config: Config,
  provider: DnsProvider,
  logger: Logger,
  options: { port: number | false; centralUrl: string; limits?: DnsLimits },
): DnsServer | undefined {
  if (options.port === false || !(provider instanceof BuiltinDnsProvider)) return undefined;
  const dnsLogger = logger.child({ component: 'dns' });
  const zone = new ZoneCache({
    connectionString: options.centralUrl,
    zone: config.baseDomain,
    logger: dnsLogger,
  });
  provider.onChange(() => zone.invalidate());
  return new DnsServer({
    zone: config.baseDomain,
    host: config.host,
    port: options.port,
    data: zone,
    logger: dnsLogger,
    limits: options.limits,
  });
}
