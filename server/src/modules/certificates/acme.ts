/**
 * Certificates from an ACME CA (Let's Encrypt, ZeroSSL, …) with acme-client, proving control
 * of each name by dns-01: the challenge's TXT value is published through the DnsProvider
 * (`_acme-challenge.<fqdn>`) and removed afterwards. Certificates and their encrypted keys are
 * stored like the built-in CA's, so ensureCertificate only orders when none is still valid.
 */
import { join } from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import acme from 'acme-client';
import type { Logger } from '../../logger.js';
import { acmeChallengeName, type DnsProvider } from '../dns/service.js';
import { loadOrCreateFiles } from './files.js';
import {
  type CertificateIssuer,
  type IssuedCertificate,
  RENEW_BEFORE_DAYS,
  type TlsCredentials,
} from './issuer.js';
import type { CertificateStore } from './store.js';

export interface AcmeIssuerOptions {
  store: CertificateStore;
  dns: DnsProvider;
  directoryUrl: string;
  email: string;
  /** Folder of the ACME account key. @default <dataDir>/acme */
  accountDir: string;
  logger: Logger;
}

type AutoOptions = Parameters<acme.Client['auto']>[0];

/** The dns-01 hooks of acme-client's auto(): publish, then remove, the challenge's TXT value. */
export function dns01Hooks(
  dns: DnsProvider,
): Pick<AutoOptions, 'challengeCreateFn' | 'challengeRemoveFn' | 'challengePriority'> {
  return {
    challengePriority: ['dns-01'],
    challengeCreateFn: async (authz, challenge, keyAuthorization) => {
      if (challenge.type !== 'dns-01') throw new Error(`unsupported ACME challenge ${challenge.type}`);
      // For dns-01, acme-client hands over the record value itself (base64url sha256, RFC 8555 §8.4).
      await dns.setTxt(acmeChallengeName(authz.identifier.value), [keyAuthorization]);
    },
    challengeRemoveFn: async (authz) => {
      await dns.clearTxt(acmeChallengeName(authz.identifier.value));
    },
  };
}

export class AcmeCertificateIssuer implements CertificateIssuer {
  readonly kind = 'acme' as const;
  private client: Promise<acme.Client> | undefined;

  constructor(private readonly options: AcmeIssuerOptions) {}

  async ensureCertificate(fqdn: string): Promise<IssuedCertificate> {
    const name = fqdn.toLowerCase();
    const live = await this.options.store.live(name, RENEW_BEFORE_DAYS);
    if (live) return live;
    const client = await this.accountClient();
    const [key, csr] = await acme.crypto.createCsr(
      { commonName: name, altNames: [name] },
      await acme.crypto.createPrivateEcdsaKey('P-256'),
    );
    let fullChain: string;
    try {
      fullChain = await client.auto({
        csr,
        email: this.options.email,
        termsOfServiceAgreed: true,
        // acme-client's own pre-check asks public resolvers, which may cache the absence of the
        // TXT record for its negative TTL; the CA checks the authoritative answer itself.
        skipChallengeVerification: true,
        ...dns01Hooks(this.options.dns),
      });
    } catch (error) {
      // acme-client's errors range from the CA's problem documents to bare TypeErrors (an
      // unreachable directory): say which order failed, keep the cause for the logs.
      throw new Error(`ACME order for ${name} failed: ${(error as Error).message}`, { cause: error });
    }
    const [leafPem, ...chain] = splitPem(fullChain);
    if (!leafPem) throw new Error('ACME CA returned no certificate');
    const leaf = new x509.X509Certificate(leafPem);
    const saved = await this.options.store.save(
      {
        fqdn: name,
        serialNumber: leaf.serialNumber,
        certificatePem: leafPem,
        chainPem: chain.join(''),
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        issuer: 'acme',
      },
      key.toString(),
      RENEW_BEFORE_DAYS,
    );
    this.options.logger.info({ fqdn: name, serialNumber: saved.serialNumber }, 'ACME certificate issued');
    return saved;
  }

  async revokeCertificate(fqdn: string): Promise<void> {
    const name = fqdn.toLowerCase();
    const live = await this.options.store.live(name, 0);
    if (live) {
      try {
        await (await this.accountClient()).revokeCertificate(live.certificatePem, { reason: 5 }); // cessationOfOperation
      } catch (error) {
        // Marked revoked here all the same: the name is being torn down and the certificate expires on its own.
        this.options.logger.warn({ err: error, fqdn: name }, 'ACME revocation failed');
      }
    }
    await this.options.store.revoke(name);
  }

  current(fqdn: string): Promise<IssuedCertificate | undefined> {
    return this.options.store.current(fqdn.toLowerCase());
  }

  tlsCredentials(fqdn: string): Promise<TlsCredentials | undefined> {
    return this.options.store.tlsCredentials(fqdn.toLowerCase());
  }

  private accountClient(): Promise<acme.Client> {
    this.client ??= loadOrCreateFiles(this.options.accountDir, ['account-key.pem'], async () => ({
      'account-key.pem': (await acme.crypto.createPrivateEcdsaKey('P-256')).toString(),
    })).then(
      (files) =>
        new acme.Client({ directoryUrl: this.options.directoryUrl, accountKey: files['account-key.pem'] }),
      (error: unknown) => {
        this.client = undefined;
        throw error;
      },
    );
    return this.client;
  }
}

export function acmeDirOf(dataDir: string): string {
  return join(dataDir, 'acme');
}

function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\r?\n?/g) ?? [];
}
