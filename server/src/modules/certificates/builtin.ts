/**
 * Onramp's own certificate authority: an ECDSA P-256 root created once in `<dataDir>/ca/`
 * (`ca-key.pem` mode 0600, `ca.pem`) and reused on every start, signing ~90-day leaf
 * certificates for clinic subdomains. Browsers do not trust it; whoever terminates TLS (or a
 * test) trusts `ca.pem`. X.509 is built with @peculiar/x509 on node's WebCrypto.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { join } from 'node:path';
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { Logger } from '../../logger.js';
import { loadOrCreateFiles } from './files.js';
import {
  type CertificateIssuer,
  type IssuedCertificate,
  RENEW_BEFORE_DAYS,
  type TlsCredentials,
} from './issuer.js';
import type { CertificateStore } from './store.js';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);

const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60_000;
/** Leaf validity, as public CAs issue (Let's Encrypt: 90 days). */
export const LEAF_VALIDITY_DAYS = 90;
const ROOT_VALIDITY_DAYS = 10 * 365;
/** Backdating absorbs clock skew between us and the verifier. */
const BACKDATE_MS = 5 * 60_000;

export interface CertificateAuthority {
  /** The root certificate, PEM: what a client must trust. */
  rootPem: string;
  root: x509.X509Certificate;
  privateKey: CryptoKey;
  /**
   * The root's key identifier as every leaf's extension, made once: the same for every leaf, and
   * ~0.5 ms of CPU per certificate otherwise (decision 070).
   */
  authorityKeyIdentifier: x509.AuthorityKeyIdentifierExtension;
}

/** Loads the CA of `dir`, creating it on first use. */
export async function loadOrCreateAuthority(dir: string, zone: string): Promise<CertificateAuthority> {
  const files = await loadOrCreateFiles(dir, ['ca-key.pem', 'ca.pem'], async () => {
    const keys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: `CN=Onramp CA for ${zone}, O=Onramp`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + ROOT_VALIDITY_DAYS * DAY_MS),
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
    return { 'ca-key.pem': x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), 'ca.pem': root.toString('pem') };
  });
  const privateKey = await crypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decodeFirst(files['ca-key.pem']),
    KEY_ALGORITHM,
    false,
    ['sign'],
  );
  const root = new x509.X509Certificate(files['ca.pem']);
  return {
    rootPem: files['ca.pem'],
    root,
    privateKey,
    authorityKeyIdentifier: await x509.AuthorityKeyIdentifierExtension.create(root.publicKey),
  };
}

export interface BuiltinIssuerOptions {
  store: CertificateStore;
  /** Folder of the CA files. @default <dataDir>/ca */
  caDir: string;
  zone: string;
  logger: Logger;
}

export class BuiltinCertificateIssuer implements CertificateIssuer {
  readonly kind = 'builtin' as const;
  private authority: Promise<CertificateAuthority> | undefined;

  constructor(private readonly options: BuiltinIssuerOptions) {}

  /** The CA, loaded (or created) on first use. */
  ca(): Promise<CertificateAuthority> {
    this.authority ??= loadOrCreateAuthority(this.options.caDir, this.options.zone).catch(
      (error: unknown) => {
        this.authority = undefined; // a failed load (disk full, say) may succeed next time
        throw error;
      },
    );
    return this.authority;
  }

  async ensureCertificate(fqdn: string): Promise<IssuedCertificate> {
    const name = fqdn.toLowerCase();
    const live = await this.options.store.live(name, RENEW_BEFORE_DAYS);
    if (live) return live;
    const { issued, privateKeyPem } = await this.issue(name);
    const saved = await this.options.store.save(issued, privateKeyPem, RENEW_BEFORE_DAYS);
    this.options.logger.info({ fqdn: name, serialNumber: saved.serialNumber }, 'certificate issued');
    return saved;
  }

  /**
   * Marks the certificate revoked in the central database. The built-in CA publishes no CRL or
   * OCSP: nothing outside Onramp learns of it (see docs/decisions/009).
   */
  async revokeCertificate(fqdn: string): Promise<void> {
    const revoked = await this.options.store.revoke(fqdn.toLowerCase());
    if (revoked)
      this.options.logger.info({ fqdn, serialNumber: revoked.serialNumber }, 'certificate revoked');
  }

  current(fqdn: string): Promise<IssuedCertificate | undefined> {
    return this.options.store.current(fqdn.toLowerCase());
  }

  tlsCredentials(fqdn: string): Promise<TlsCredentials | undefined> {
    return this.options.store.tlsCredentials(fqdn.toLowerCase());
  }

  private async issue(fqdn: string): Promise<{ issued: IssuedCertificate; privateKeyPem: string }> {
    const ca = await this.ca();
    const keys = (await crypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const notBefore = new Date(now - BACKDATE_MS);
    const notAfter = new Date(now + LEAF_VALIDITY_DAYS * DAY_MS);
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `CN=${fqdn}`,
      // The root's subject as it is encoded in the root (not its string, parsed again per leaf):
      // the issuer field matches the root's subject byte for byte, and costs no parsing.
      issuer: ca.root.subjectName,
      notBefore,
      notAfter,
      signingAlgorithm: SIGNING_ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: ca.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: fqdn }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ca.authorityKeyIdentifier,
      ],
    });
    const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
    return {
      issued: {
        fqdn,
        serialNumber: leaf.serialNumber,
        certificatePem: leaf.toString('pem'),
        chainPem: ca.rootPem,
        notBefore: leaf.notBefore,
        notAfter: leaf.notAfter,
        issuer: 'builtin',
      },
      privateKeyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'),
    };
  }
}

/** 128 random bits, positive (RFC 5280 §4.1.2.2: at most 20 octets, non-negative). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01; // positive, and no leading zero byte to strip
  return bytes.toString('hex');
}

export function caDirOf(dataDir: string): string {
  return join(dataDir, 'ca');
}
