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
import { DnsServer } from './server.js';

export { BuiltinDnsProvider } from './builtin.js';
export { CloudflareDnsProvider, CloudflareError } from './cloudflare.js';
export * from './provider.js';
export { DnsServer } from './server.js';

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
 * to run: records published elsewhere (Cloudflare) or `port` false (DNS_PORT=0).
 */
export function createDnsServer(
  config: Config,
  provider: DnsProvider,
  logger: Logger,
  port: number | false,
): DnsServer | undefined {
  if (port === false || !(provider instanceof BuiltinDnsProvider)) return undefined;
  return new DnsServer({
    zone: config.baseDomain,
    host: config.host,
    port,
    data: provider,
    logger: logger.child({ component: 'dns' }),
  });
}
