/** The certificates module's entry point: the issuer CERT_PROVIDER names. */
import type { CentralPrisma } from '../../db/database.js';
import type { Config } from '../../env.js';
import type { Logger } from '../../logger.js';
import type { DnsProvider } from '../dns/service.js';
import { AcmeCertificateIssuer, acmeDirOf } from './acme.js';
import { BuiltinCertificateIssuer, caDirOf } from './builtin.js';
import type { CertificateIssuer } from './issuer.js';
import { CertificateStore } from './store.js';

export { AcmeCertificateIssuer, dns01Hooks } from './acme.js';
export { BuiltinCertificateIssuer, caDirOf, LEAF_VALIDITY_DAYS, loadOrCreateAuthority } from './builtin.js';
export * from './issuer.js';
export { CertificateStore } from './store.js';

export function createCertificateIssuer(
  config: Config,
  prisma: CentralPrisma,
  dns: DnsProvider,
  logger: Logger,
): CertificateIssuer {
  const store = new CertificateStore(prisma, config.encryptionKey);
  const log = logger.child({ component: 'certificates' });
  if (config.certProvider === 'acme') {
    if (!config.acme) throw new Error('CERT_PROVIDER=acme without its settings'); // env.ts refuses this
    return new AcmeCertificateIssuer({
      store,
      dns,
      ...config.acme,
      accountDir: acmeDirOf(config.dataDir),
      logger: log,
    });
  }
  return new BuiltinCertificateIssuer({
    store,
    caDir: caDirOf(config.dataDir),
    zone: config.baseDomain,
    logger: log,
  });
}
