/**
 * Subdomain allocation shared by clinic registration and onboarding. A name is a DNS label
 * (RFC 1035/1123: 1–63 of a–z, 0–9 and hyphen, no hyphen at either end) derived from the
 * organisation's name, never a reserved name, and unique across clinics and onboardings: the
 * primary key of `subdomain_reservations` decides races, so two concurrent callers can never
 * both get a name, whichever instance they run on.
 */
import { randomInt } from 'node:crypto';
import { execute, queryRows, type RawDb, type RawWriteDb } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';

/** Longest label DNS allows. */
export const MAX_LABEL_LENGTH = 63;
/** Longest slug kept from a name, leaving room for a `-NNNN` collision suffix. */
const MAX_BASE_LENGTH = 50;
/** Shorter slugs ("AB", "東京") get a generated name instead: too easy to confuse or squat. */
const MIN_BASE_LENGTH = 3;

/**
 * Names no tenant may take, by who gives them a meaning. A host of that name under
 * `BASE_DOMAIN` would be trusted by someone else's software: a browser's proxy settings (WPAD),
 * Windows networking (ISATAP), mail clients' account set-up (Autodiscover, autoconfig), mail
 * servers' TLS policy (MTA-STS), key lookups (OpenPGP WKD), or people, who read `admin` or
 * `billing` as the platform's own.
 */
export const RESERVED_SUBDOMAINS: ReadonlySet<string> = new Set([
  // The platform's own hosts and pages, and words that pass for them.
  ...['www', 'api', 'app', 'apps', 'admin', 'administrator', 'root', 'console', 'dashboard'],
  ...['status', 'static', 'assets', 'cdn', 'media', 'auth', 'login', 'signin', 'signup', 'sso'],
  ...['oauth', 'register', 'account', 'accounts', 'billing', 'payment', 'payments', 'support'],
  ...['help', 'docs', 'blog', 'dev', 'staging', 'test', 'demo', 'internal', 'intranet', 'portal'],
  ...['onramp', 'onboarding', 'graphql', 'metrics', 'health', 'verify', 'secure', 'localhost'],
  // RFC 2142 mailbox and service names (the same words as hosts invite the same trust).
  ...['info', 'marketing', 'sales', 'abuse', 'noc', 'security', 'postmaster', 'hostmaster'],
  ...['usenet', 'news', 'webmaster', 'uucp', 'ftp'],
  // Mail: servers, webmail, client auto-configuration (Microsoft Autodiscover, Mozilla
  // autoconfig), transport security policy (RFC 8461 MTA-STS, TLS-RPT), OpenPGP key directory.
  ...['mail', 'email', 'webmail', 'smtp', 'imap', 'pop', 'pop3', 'mx', 'autodiscover'],
  ...['autoconfig', 'mta-sts', 'tls-rpt', 'openpgpkey', 'dkim', 'dmarc', 'spf', 'bimi'],
  // Name service and network infrastructure: WPAD (proxy auto-discovery), ISATAP (RFC 5214),
  // time, directories, remote access.
  ...[
    'ns',
    'ns1',
    'ns2',
    'ns3',
    'dns',
    'wpad',
    'isatap',
    'ntp',
    'time',
    'ldap',
    'kerberos',
    'radius',
    'proxy',
  ],
  ...['gateway', 'router', 'vpn', 'ssh', 'sftp', 'rdp', 'remote'],
  // Microsoft 365 / Skype for Business / Intune discovery records.
  ...['lyncdiscover', 'sip', 'sipfed', 'meet', 'dialin', 'msoid', 'enterpriseenrollment'],
  'enterpriseregistration',
  // Certificate issuance (ACME, RFC 8555) and its challenge names without the underscore.
  ...['acme', 'acme-challenge', 'pki', 'ca', 'crl', 'ocsp'],
]);

/**
 * A reserved name, or one made to look like it: `www2`, `www-2`, `admin-2`, `ns4` (numbered
 * hosts are how platforms name their own).
 */
export function isReservedSubdomain(name: string): boolean {
  if (RESERVED_SUBDOMAINS.has(name)) return true;
  const unnumbered = name.replace(/-?\d+$/, '');
  return unnumbered !== name && RESERVED_SUBDOMAINS.has(unnumbered);
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Letters that Unicode decomposition does not reduce to ASCII. */
const TRANSLITERATIONS: Record<string, string> = {
  ß: 'ss',
  æ: 'ae',
  œ: 'oe',
  ø: 'o',
  đ: 'd',
  ð: 'd',
  ł: 'l',
  þ: 'th',
  ı: 'i',
  ħ: 'h',
};

/** Whether `name` is a valid DNS label that a tenant may hold. */
export function isAllowedSubdomain(name: string): boolean {
  return LABEL.test(name) && !isReservedSubdomain(name) && !name.startsWith('xn--');
}

/**
 * `Clinique du Lac` → `clinique-du-lac`, `Zürich Zahnarzt` → `zurich-zahnarzt`. Accents are
 * dropped, other characters become single hyphens, at most 50 characters; may be "" (no Latin
 * letters or digits).
 */
export function subdomainSlug(name: string, maxLength = MAX_BASE_LENGTH): string {
  return name
    .toLowerCase()
    .replace(/[ßæœøđðłþıħ]/g, (letter) => TRANSLITERATIONS[letter] ?? letter)
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, maxLength)
    .replace(/-+$/, '');
}

const ADJECTIVES = [
  'amber',
  'bright',
  'calm',
  'clear',
  'coral',
  'crisp',
  'early',
  'fair',
  'gentle',
  'golden',
  'green',
  'happy',
  'kind',
  'light',
  'lucky',
  'mellow',
  'noble',
  'quiet',
  'rapid',
  'silver',
  'steady',
  'sunny',
  'swift',
  'tidy',
  'vivid',
  'warm',
  'wise',
  'young',
];
const NOUNS = [
  'brook',
  'cedar',
  'cloud',
  'delta',
  'field',
  'forest',
  'garden',
  'harbor',
  'island',
  'lake',
  'maple',
  'meadow',
  'orchard',
  'peak',
  'pine',
  'river',
  'shore',
  'spring',
  'stone',
  'summit',
  'valley',
  'willow',
];

/** A readable name for an organisation without one, e.g. `bright-harbor-4821`. */
export function generatedSubdomain(): string {
  const pick = (words: string[]) => words[randomInt(words.length)] as string;
  return `${pick(ADJECTIVES)}-${pick(NOUNS)}-${randomInt(1000, 10_000)}`;
}

/**
 * The name to try first for an organisation: its slug, or a generated one when the slug is too
 * short or reserved (`Admin` gets `bright-harbor-4821`, never `admin-2`).
 */
export function preferredSubdomain(organizationName: string | null | undefined): string {
  const base = organizationName ? subdomainSlug(organizationName) : '';
  return base.length >= MIN_BASE_LENGTH && isAllowedSubdomain(base) ? base : generatedSubdomain();
}

export type SubdomainOwner = { clinicId: string } | { onboardingId: string };

/** A client, a Prisma transaction or a step's pg transaction (db/raw.ts). */
type Db = RawDb & RawWriteDb;

/**
 * Reserves the first free name of `base`, `base-2`, `base-3`, … for `owner`. Call it inside the
 * transaction that creates (or updates) the owner so a rollback frees the name. Under
 * concurrency the INSERT … ON CONFLICT waits for a competing uncommitted reservation of the same
 * name and then skips it, so each name goes to exactly one caller.
 * @param base a label from {@link preferredSubdomain}
 */
export async function reserveSubdomain(db: Db, requested: string, owner: SubdomainOwner): Promise<string> {
  // A reserved base has no free numbered variant (they are reserved too).
  const base = isAllowedSubdomain(requested) ? requested : generatedSubdomain();
  const clinicId = 'clinicId' in owner ? owner.clinicId : null;
  const onboardingId = 'onboardingId' in owner ? owner.onboardingId : null;
  /** Takes `name` unless a reservation or another clinic's subdomain holds it. */
  const take = async (name: string) =>
    (await execute(
      db,
      Prisma.sql`
        INSERT INTO subdomain_reservations (subdomain, clinic_id, onboarding_id)
        SELECT ${name}::text, ${clinicId}::uuid, ${onboardingId}::uuid
         WHERE NOT EXISTS (SELECT 1 FROM clinics WHERE subdomain = ${name}::text AND id IS DISTINCT FROM ${clinicId}::uuid)
        ON CONFLICT (subdomain) DO NOTHING`,
    )) === 1;
  // Most names are free: the name itself in one statement, before any look at what is taken.
  let candidate = firstFree(base, new Set());
  if (await take(candidate)) return candidate;
  for (let round = 0; round < 50; round += 1) {
    // A clinic's provisional name (`name-1a2b3c4d`, before its subdomain step) lives only in
    // `clinics`; skip those too.
    const taken = new Set(
      (
        await queryRows<{ subdomain: string }>(
          db,
          Prisma.sql`
            SELECT subdomain FROM subdomain_reservations WHERE subdomain = ${base}::text OR subdomain LIKE ${`${base}-%`}::text
            UNION SELECT subdomain FROM clinics
             WHERE (subdomain = ${base}::text OR subdomain LIKE ${`${base}-%`}::text) AND id IS DISTINCT FROM ${clinicId}::uuid`,
        )
      ).map((row) => row.subdomain),
    );
    candidate = firstFree(base, taken);
    if (await take(candidate)) return candidate;
    // Someone committed `candidate` meanwhile: look again.
  }
  throw new Error(`no free subdomain found for ${base}`);
}

function firstFree(base: string, taken: Set<string>): string {
  for (let n = 1; ; n += 1) {
    const suffix = n === 1 ? '' : `-${n}`;
    const candidate = `${base.slice(0, MAX_LABEL_LENGTH - suffix.length).replace(/-+$/, '')}${suffix}`;
    if (!taken.has(candidate) && isAllowedSubdomain(candidate)) return candidate;
  }
}

/** The name reserved by a clinic, if its subdomain step already ran. */
export async function clinicSubdomain(db: Db, clinicId: string): Promise<string | null> {
  const [row] = await queryRows<{ subdomain: string }>(
    db,
    Prisma.sql`SELECT subdomain FROM subdomain_reservations WHERE clinic_id = ${clinicId}::uuid`,
  );
  return row?.subdomain ?? null;
}
