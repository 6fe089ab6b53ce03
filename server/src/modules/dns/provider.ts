export type DnsRecordType = 'A' | 'AAAA' | 'CNAME' | 'TXT';

export interface DnsRecord {
  /** fqdn, lower-case, no trailing dot */
  name: string;
  type: DnsRecordType;
  value: string;
  ttl: number;
}

export interface DnsProvider {
  readonly kind: 'builtin' | 'cloudflare';
  /** Idempotent: points `fqdn` at the platform's ingress; resolves with the records now published. */
  publishSubdomain(fqdn: string): Promise<DnsRecord[]>;
  /** Idempotent: removes every record of `fqdn`. */
  unpublishSubdomain(fqdn: string): Promise<void>;
  /** The records `fqdn` has now, as the provider holds them (what the console shows). */
  records(fqdn: string): Promise<DnsRecord[]>;
  /** ACME dns-01 support: replace / clear the TXT values of `fqdn`. */
  setTxt(fqdn: string, values: string[]): Promise<void>;
  clearTxt(fqdn: string): Promise<void>;
}

/** Lower-case, without the trailing dot: the form records are stored and compared in. */
export function normaliseName(name: string): string {
  return name.trim().toLowerCase().replace(/\.$/, '');
}

/** Whether `name` (normalised) is `zone` or below it. */
export function inZone(name: string, zone: string): boolean {
  return name === zone || name.endsWith(`.${zone}`);
}

/** The name a clinic is reached at: `<subdomain>.<BASE_DOMAIN>`. */
export function clinicFqdn(subdomain: string, baseDomain: string): string {
  return normaliseName(`${subdomain}.${baseDomain}`);
}

/** The name ACME dns-01 challenges of `fqdn` are published at (RFC 8555 §8.4). */
export function acmeChallengeName(fqdn: string): string {
  return `_acme-challenge.${normaliseName(fqdn)}`;
}

/** What a subdomain points at (config.ingress): A and/or AAAA records, or a single CNAME. */
export interface Ingress {
  ipv4?: string;
  ipv6?: string;
  cname?: string;
}

/** Address records (A/AAAA/CNAME) are cached by resolvers for this long. */
export const ADDRESS_TTL = 300;
/** ACME challenge values change within minutes; a short TTL keeps retries honest. */
export const TXT_TTL = 60;

/** The records `fqdn` must have to point at `ingress`. */
export function ingressRecords(fqdn: string, ingress: Ingress): DnsRecord[] {
  const name = normaliseName(fqdn);
  // A CNAME cannot coexist with other data at the same name (RFC 1034 §3.6.2), so it stands alone.
  if (ingress.cname) return [{ name, type: 'CNAME', value: normaliseName(ingress.cname), ttl: ADDRESS_TTL }];
  const records: DnsRecord[] = [];
  if (ingress.ipv4) records.push({ name, type: 'A', value: ingress.ipv4, ttl: ADDRESS_TTL });
  if (ingress.ipv6) records.push({ name, type: 'AAAA', value: ingress.ipv6, ttl: ADDRESS_TTL });
  return records;
}

export const ADDRESS_TYPES: readonly DnsRecordType[] = ['A', 'AAAA', 'CNAME'];
