export interface IssuedCertificate {
  fqdn: string;
  serialNumber: string;
  certificatePem: string;
  chainPem: string;
  notBefore: Date;
  notAfter: Date;
  issuer: 'builtin' | 'acme';
}

export interface CertificateIssuer {
  readonly kind: 'builtin' | 'acme';
  /** Idempotent: the stored still-valid certificate for `fqdn`, or a newly issued one. */
  ensureCertificate(fqdn: string): Promise<IssuedCertificate>;
  /** Idempotent. */
  revokeCertificate(fqdn: string): Promise<void>;
  /** The live (unrevoked) certificate of `fqdn`, expired or not; no key. */
  current(fqdn: string): Promise<IssuedCertificate | undefined>;
  /** Key and chain of the live certificate of `fqdn`, for whoever terminates TLS. */
  tlsCredentials(fqdn: string): Promise<TlsCredentials | undefined>;
}

/** What a TLS server needs to present a certificate (PEM). Holds a private key: never log it. */
export interface TlsCredentials {
  key: string;
  cert: string;
  /** The issuer chain (intermediates, or the built-in root). */
  ca: string;
}

/** Certificates are renewed when fewer than this many days of validity remain. */
export const RENEW_BEFORE_DAYS = 30;
