/**
 * Onramp's own certificate authority: an ECDSA P-256 root created once in `<dataDir>/ca/`
 * (`ca-key.pem` mode 0600, `ca.pem`) and reused on every start, signing ~90-day leaf
 * certificates for clinic subdomains. Browsers do not trust it; whoever terminates TLS (or a
 * test) trusts `ca.pem`. The root is made once with @peculiar/x509 on node's WebCrypto; leaves are
 * written as DER from a template of the parts they share (leaf.ts, decision 076) and signed with
 * node:crypto, a leaf's cost being its cryptography.
 */
import {
  createECDH,
  createPrivateKey,
  type KeyObject,
  randomBytes,
  sign,
  webcrypto,
  X509Certificate,
} from 'node:crypto';
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
import { LeafTemplate, p256PrivateKeyInfo, p256PublicKeyInfo, toPem } from './leaf.js';
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
  privateKey: KeyObject;
  /** What every leaf shares, encoded once from the root (decision 076). */
  leaves: LeafTemplate;
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
  const privateKey = createPrivateKey(files['ca-key.pem']);
  const root = new X509Certificate(files['ca.pem']);
  // Files from elsewhere (a restore, a hand edit) must not sign leaves no client would accept.
  if (!root.checkPrivateKey(privateKey)) throw new Error(`${dir}: ca-key.pem is not the key of ca.pem`);
  return { rootPem: files['ca.pem'], privateKey, leaves: new LeafTemplate(root.raw) };
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
    return issueLeaf(await this.ca(), fqdn);
  }
}

/** A new key pair and its leaf certificate for `fqdn`, signed by `ca`; nothing stored. */
export function issueLeaf(
  ca: CertificateAuthority,
  fqdn: string,
): { issued: IssuedCertificate; privateKeyPem: string } {
  // A key pair from ECDH (35 µs), encoded here: not generateKeyPair, whose KeyObjects cost
  // more to encode than to make (OpenSSL's SPKI encoder ~110 µs, PKCS #8 ~60 µs) and, exported as
  // JWK instead, deadlocked node 20 when a collection ran inside the export (decision 076). The
  // key, the signature (~27 µs) and the DER are synchronous: a hop to libuv's threads costs more
  // CPU than the work, which blocks the event loop for less than one statement's client work.
  const keys = createECDH('prime256v1');
  const point = keys.generateKeys();
  const now = Math.floor(Date.now() / 1000) * 1000; // X.509 times are whole seconds
  const notBefore = new Date(now - BACKDATE_MS);
  const notAfter = new Date(now + LEAF_VALIDITY_DAYS * DAY_MS);
  const serial = serialNumber();
  const tbs = ca.leaves.toBeSigned({
    serialNumber: Buffer.from(serial, 'hex'),
    notBefore,
    notAfter,
    dnsName: fqdn,
    publicKey: p256PublicKeyInfo(point),
  });
  const signature = sign('sha256', tbs, ca.privateKey); // DER ECDSA-Sig-Value, as X.509 has it
  return {
    issued: {
      fqdn,
      serialNumber: serial,
      certificatePem: toPem(ca.leaves.certificate(tbs, signature), 'CERTIFICATE'),
      chainPem: ca.rootPem,
      notBefore,
      notAfter,
      issuer: 'builtin',
    },
    privateKeyPem: toPem(p256PrivateKeyInfo(keys.getPrivateKey(), point), 'PRIVATE KEY'),
  };
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
