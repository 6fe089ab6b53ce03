/**
 * The only reader of process.env. Every variable of the README's "Configuration" table is parsed here,
 * all problems are reported together, and the rest of the code receives a typed Config.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { REPO_ROOT } from './db/paths.js';
import { PROVISIONING_STEP_NAMES, type ProvisioningStepName } from './modules/provisioning/step-names.js';

const postgresUrl = z
  .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
  .transform((url) => url.trim());

const list = (raw: string | undefined) =>
  (raw ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value?.trim() ? value.trim() : undefined));

const DOMAIN_NAME =
  /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const WINDOW_UNITS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `<max>/<window>`, e.g. `10/1h`, `1/24h`, `100/30m`, `5/90s`. */
const rateRule = (fallback: string) =>
  z
    .string()
    .trim()
    .default(fallback)
    .transform((raw, ctx) => {
      const match = /^(\d{1,7})\/(\d{1,6})([smhd])$/.exec(raw);
      if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
        ctx.addIssue({ code: 'custom', message: 'must look like 10/1h (max/window in s, m, h or d)' });
        return z.NEVER;
      }
      const unit = match[3] as keyof typeof WINDOW_UNITS;
      return { max: Number(match[1]), windowSeconds: Number(match[2]) * WINDOW_UNITS[unit] };
    });

/** `<n><unit>`, e.g. `48h`, `30m`, `7d`, `90s`; in seconds. */
const duration = (fallback: string) =>
  z
    .string()
    .trim()
    .default(fallback)
    .transform((raw, ctx) => {
      const match = /^(\d{1,7})([smhd])$/.exec(raw);
      if (!match || Number(match[1]) < 1) {
        ctx.addIssue({ code: 'custom', message: 'must look like 48h (a number and s, m, h or d)' });
        return z.NEVER;
      }
      return Number(match[1]) * WINDOW_UNITS[match[2] as keyof typeof WINDOW_UNITS];
    });

/** A document version users accept (docs/decisions/053): a short label such as `2026-01`. */
const consentVersion = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9._-]{1,32}$/, { error: 'must be 1 to 32 letters, digits, dots, dashes or underscores' })
  .default('2026-01');

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** 32 bytes, given as 64 hex characters or as base64. */
const encryptionKey = z
  .string()
  .transform((raw, ctx) => {
    const text = raw.trim();
    const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes, as 64 hex characters or base64' });
      return z.NEVER;
    }
    return key;
  })
  .optional();

const rawSchema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  CLINIC_DATABASE_SERVERS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const urls = list(raw);
      for (const url of urls) {
        if (!postgresUrl.safeParse(url).success) {
          ctx.addIssue({ code: 'custom', message: `"${redactUrl(url)}" is not a postgres:// URL` });
        }
      }
      return urls;
    }),
  PORT: port(4000),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  ONRAMP_ENV: z.enum(['development', 'test', 'production']).default('development'),
  ONRAMP_DATA_DIR: z.string().trim().min(1).default('.onramp'),
  ONRAMP_EMBEDDED_DATABASE: z.enum(['0', '1'], { error: 'must be 0 or 1' }).default('0'),
  ONRAMP_CONSOLE_DIR: z.string().trim().min(1).optional(),
  REGISTRATION_MODE: z.enum(['strict', 'hybrid']).default('strict'),
  SMTP_URL: z.url({ protocol: /^smtps?$/, error: 'must be an smtp:// or smtps:// URL' }).optional(),
  SMS_GATEWAY_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).optional(),
  SMS_GATEWAY_TOKEN: optionalText,
  BASE_DOMAIN: z
    .string()
    .trim()
    .toLowerCase()
    .regex(DOMAIN_NAME, { error: 'must be a domain name such as onramp.localhost' })
    .default('onramp.localhost'),
  DNS_PORT: port(5354),
  INGRESS_IPV4: z.ipv4({ error: 'must be an IPv4 address' }).optional(),
  INGRESS_IPV6: z.ipv6({ error: 'must be an IPv6 address' }).optional(),
  INGRESS_CNAME: z
    .string()
    .trim()
    .toLowerCase()
    .transform((name) => name.replace(/\.$/, ''))
    .pipe(z.string().regex(DOMAIN_NAME, { error: 'must be a domain name such as ingress.example.com' }))
    .optional(),
  DNS_PROVIDER: z.enum(['builtin', 'cloudflare']).default('builtin'),
  CLOUDFLARE_API_TOKEN: optionalText,
  CLOUDFLARE_ZONE_ID: optionalText,
  CLOUDFLARE_API_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s):// URL' })
    .default('https://api.cloudflare.com/client/v4'),
  CERT_PROVIDER: z.enum(['builtin', 'acme']).default('builtin'),
  ACME_DIRECTORY_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s):// URL' })
    .default('https://acme-staging-v02.api.letsencrypt.org/directory'),
  ACME_EMAIL: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.email({ error: 'must be an e-mail address' }))
    .optional(),
  ONRAMP_ADMIN_EMAIL: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.email({ error: 'must be an e-mail address' }))
    .default('admin@onramp.localhost'),
  JWT_SECRET: z.string().min(32, { error: 'must be at least 32 characters' }).optional(),
  ENCRYPTION_KEY: encryptionKey,
  METRICS_TOKEN: z.string().trim().min(16, { error: 'must be at least 16 characters' }).optional(),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  FAULT_INJECTION: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const steps = list(raw);
      for (const step of steps) {
        if (!(PROVISIONING_STEP_NAMES as readonly string[]).includes(step)) {
          ctx.addIssue({
            code: 'custom',
            message: `unknown step "${step}"; expected one of ${PROVISIONING_STEP_NAMES.join(', ')}`,
          });
        }
      }
      return steps as ProvisioningStepName[];
    }),
  PUBLIC_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s):// URL' }).optional(),
  CLINIC_POOL_SIZE: z.coerce.number().int().min(0).max(50).default(2),
  LOGIN_CODE_SEND_LIMITS: z.enum(['on', 'off']).default('on'),
  TRUSTED_PROXIES: z.coerce.number().int().min(0).max(10).default(0),
  PROVISIONING_RETRY_BASE_MS: z.coerce.number().int().min(1).max(600_000).default(5000),
  WEBHOOK_RETRY_BASE_MS: z.coerce.number().int().min(1).max(3_600_000).default(30_000),
  WEBHOOK_ALLOW_PRIVATE_TARGETS: z.enum(['0', '1']).default('0'),
  PROVISIONING_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  CLINIC_HEALTH_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8),
  CLINIC_MIGRATIONS_DIR: z.string().min(1).optional(),
  CLINIC_ROLLOUT_AT_START: z.enum(['auto', 'off']).default('auto'),
  CLINIC_HEALTH_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(86_400).default(4),
  CLINIC_DEEP_CHECK_PERIOD: duration('10m'),
  ALLOWED_HOSTS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const hosts = list(raw).map((host) => host.toLowerCase().replace(/\.$/, ''));
      for (const host of hosts) {
        // A leading dot stands for the domain and every name under it (`.example.com`).
        const name = host.startsWith('.') ? host.slice(1) : host;
        if (!DOMAIN_NAME.test(name) && isIP(name.replace(/^\[(.*)\]$/, '$1')) === 0) {
          ctx.addIssue({
            code: 'custom',
            message: `"${host}" is not a host name such as onramp.example.com or .example.com`,
          });
        }
      }
      return hosts.map((host) => host.replace(/^\[(.*)\]$/, '$1'));
    }),
  HASH_SLOTS_PER_ADDRESS: z.coerce.number().int().min(1).max(1000).optional(),
  CORS_ORIGINS: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      const origins = list(raw);
      for (const origin of origins) {
        try {
          if (new URL(origin).origin !== origin) throw new Error();
        } catch {
          ctx.addIssue({
            code: 'custom',
            message: `"${origin}" is not an origin such as https://app.example.com`,
          });
        }
      }
      return origins;
    }),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  ONBOARDING_START_LIMIT: rateRule('10/1h'),
  ONBOARDING_PROVISION_LIMIT: rateRule('1/24h'),
  ONBOARDING_STATUS_LIMIT: rateRule('100/1h'),
  ONBOARDING_IP_LIMIT: rateRule('50/1h'),
  REGISTRATION_IP_LIMIT: rateRule('5/1h'),
  REGISTRATION_TOTAL_LIMIT: rateRule('100/1h'),
  INVITATION_CLINIC_LIMIT: rateRule('50/24h'),
  INVITATION_TOTAL_LIMIT: rateRule('1000/24h'),
  UNVERIFIED_CLINIC_TTL: duration('48h'),
  CLINIC_TRASH_RETENTION: duration('7d'),
  CLINIC_DELETE_RETENTION: duration('30d'),
  CONSENT_TERMS_VERSION: consentVersion,
  CONSENT_PRIVACY_VERSION: consentVersion,
});

type RawEnv = z.output<typeof rawSchema>;

/** Every variable Onramp reads; the README's configuration table lists exactly these (env.test.ts). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(rawSchema.shape);

export type OnrampEnv = RawEnv['ONRAMP_ENV'];

export interface Config {
  env: OnrampEnv;
  /** Central database; undefined means "start the embedded PostgreSQL". */
  databaseUrl: string | undefined;
  /** Admin URLs of clinic database servers; empty means "the central server". */
  clinicDatabaseServers: string[];
  port: number;
  host: string;
  /** Absolute path. */
  dataDir: string;
  /** Absolute path of a built console to serve at `/`. @default console/dist of the repository */
  consoleDir: string | undefined;
  registrationMode: RawEnv['REGISTRATION_MODE'];
  smtpUrl: string | undefined;
  smsGatewayUrl: string | undefined;
  smsGatewayToken: string | undefined;
  baseDomain: string;
  dnsPort: number;
  /**
   * What clinic subdomains point at: A (and AAAA) records, or one CNAME.
   * @default { ipv4: '127.0.0.1' } unless INGRESS_CNAME is set
   */
  ingress: { ipv4?: string; ipv6?: string; cname?: string };
  /** Where clinic DNS records are published. @default builtin */
  dnsProvider: RawEnv['DNS_PROVIDER'];
  /** Set when dnsProvider is cloudflare (validated: token and zone present). */
  cloudflare: { apiToken: string; zoneId: string; apiUrl: string } | undefined;
  /** Who issues clinic certificates. @default builtin (Onramp's own CA in <dataDir>/ca) */
  certProvider: RawEnv['CERT_PROVIDER'];
  /** Set when certProvider is acme (validated: e-mail present). */
  acme: { directoryUrl: string; email: string } | undefined;
  adminEmail: string;
  jwtSecret: string;
  encryptionKey: Buffer;
  redisUrl: string | undefined;
  /**
   * Bearer token `/metrics` requires. Production without one keeps `/metrics` closed; elsewhere
   * `/metrics` is open unless one is set.
   */
  metricsToken: string | undefined;
  faultInjection: ProvisioningStepName[];
  clinicPoolSize: number;
  /**
   * Whether requestLoginCode enforces its send limits (per-e-mail cooldown, per-address lockout).
   * Off only for benchmarks and load tests; production refuses it. The 5-wrong-tries budget of a
   * code is not a send limit and always applies.
   * @default true
   */
  loginCodeSendLimits: boolean;
  /** Reverse proxies in front of Onramp whose X-Forwarded-For entries are believed (see http/client-address.ts). */
  trustedProxies: number;
  /** Base URL of links in e-mails (verification). @default http://localhost:<PORT> */
  publicUrl: string;
  /** Hybrid mode: first retry delay; each next one doubles, with jitter. */
  provisioningRetryBaseMs: number;
  /** Webhooks: delay before the first retry of a failed delivery; each next one doubles (at most 1 h). */
  webhookRetryBaseMs: number;
  /**
   * Whether webhook endpoints may be loopback, private or link-local addresses (plain http is
   * allowed outside production anyway). Development and tests only (a local receiver); production refuses it.
   * @default false
   */
  webhookAllowPrivateTargets: boolean;
  /** A RUNNING provisioning run not renewed for this long was abandoned (crash). */
  provisioningLeaseSeconds: number;
  /** Most clinic databases probed at once by health checks (connections opened at once). */
  clinicHealthConcurrency: number;
  /** Folder of the clinic migrations (absolute, or from the repository root). @default prisma/clinic/migrations */
  clinicMigrationsDir: string | undefined;
  /**
   * `auto`: at start, clinics behind the clinic schema get a rollout of their own (no canary),
   * unless one is under way; `off`: only an operator starts rollouts (docs/decisions/047).
   * @default 'auto'
   */
  clinicRolloutAtStart: 'auto' | 'off';
  /**
   * Seconds between background shallow sweeps (one catalog query per clinic server, which also
   * paces the deep checks); 0 disables background health work (docs/decisions/051).
   * @default 4
   */
  clinicHealthIntervalSeconds: number;
  /**
   * Every clinic gets a deep check (a connection as its role) at least once per this many
   * seconds, a few per shallow sweep, oldest-checked first.
   * @default 600
   */
  clinicDeepCheckPeriodSeconds: number;
  /**
   * Extra `Host` names served (HTTP and WebSocket), besides localhost, loopback addresses and
   * PUBLIC_URL's host; `.example.com` stands for the domain and its subdomains (see http/hosts.ts).
   */
  allowedHosts: string[];
  /**
   * argon2 hashing slots one client address may hold at once (running or waiting) for password
   * sign-ins; more is refused with RATE_LIMITED. @default half of the slots, at least one
   */
  hashSlotsPerAddress: number | undefined;
  /** Extra origins allowed by CORS and on WebSocket upgrades; the server's own origin always is. */
  corsOrigins: string[];
  logLevel: NonNullable<RawEnv['LOG_LEVEL']>;
  /**
   * Rate limits of the onboarding REST/GraphQL API (per application for start and status, per
   * onboarding for provision, per client address for everything).
   * @default start 10/1h, provision 1/24h, status 100/1h, ip 50/1h (README, "Onboarding service")
   */
  onboardingLimits: Record<'start' | 'provision' | 'status' | 'ip', { max: number; windowSeconds: number }>;
  /**
   * registerClinic attempts per client address and in total (every address together).
   * @default ip 5/1h, total 100/1h
   */
  registrationLimits: Record<'ip' | 'total', { max: number; windowSeconds: number }>;
  /**
   * inviteMember attempts per clinic and in total (every clinic together).
   * @default clinic 50/24h, total 1000/24h
   */
  invitationLimits: Record<'clinic' | 'total', { max: number; windowSeconds: number }>;
  /**
   * A registration whose admin has not verified the e-mail this long after it was made is
   * undone (docs/decisions/018). @default 172800 (48 h)
   */
  unverifiedClinicTtlSeconds: number;
  /**
   * How long a quarantined clinic database (an unfinished run's) is kept before the purge drops
   * it (docs/decisions/040). @default 604800 (7 d)
   */
  clinicTrashRetentionSeconds: number;
  /** How long a deleted clinic stays restorable before the purge. @default 2592000 (30 d) */
  clinicDeleteRetentionSeconds: number;
  /**
   * The current version of each document a user accepts (docs/decisions/053): a change asks
   * every user to accept the new one at their next sign-in. @default terms 2026-01, privacy 2026-01
   */
  consentVersions: Record<'TERMS' | 'PRIVACY', string>;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses an environment. Secrets missing outside production are generated once into the
 * data dir (`secrets.json`, mode 0600) so that sessions and encrypted data survive restarts.
 * Relative paths (ONRAMP_DATA_DIR, ONRAMP_CONSOLE_DIR) are resolved from `cwd`, by default the
 * repository root: `pnpm start` runs there but workspace scripts run in `server/`, and both must
 * find the same data dir.
 * @throws ConfigError listing every problem at once.
 */
export function loadConfig(
  source: Record<string, string | undefined> = process.env,
  cwd = REPO_ROOT,
): Config {
  // Empty strings mean "unset": `FOO= pnpm start` should not trip URL validation.
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== ''));
  const parsed = rawSchema.safeParse(cleaned);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message}`);

  if (parsed.success) problems.push(...providerProblems(parsed.data), ...productionProblems(parsed.data));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);

  const raw = parsed.data;
  const dataDir = resolve(cwd, raw.ONRAMP_DATA_DIR);
  const secrets =
    raw.JWT_SECRET && raw.ENCRYPTION_KEY
      ? { jwtSecret: raw.JWT_SECRET, encryptionKey: raw.ENCRYPTION_KEY }
      : devSecrets(dataDir, raw);

  return {
    env: raw.ONRAMP_ENV,
    databaseUrl: raw.DATABASE_URL,
    clinicDatabaseServers: raw.CLINIC_DATABASE_SERVERS,
    port: raw.PORT,
    host: raw.HOST,
    dataDir,
    consoleDir: raw.ONRAMP_CONSOLE_DIR ? resolve(cwd, raw.ONRAMP_CONSOLE_DIR) : undefined,
    registrationMode: raw.REGISTRATION_MODE,
    smtpUrl: raw.SMTP_URL,
    smsGatewayUrl: raw.SMS_GATEWAY_URL,
    smsGatewayToken: raw.SMS_GATEWAY_TOKEN,
    baseDomain: raw.BASE_DOMAIN,
    dnsPort: raw.DNS_PORT,
    ingress: raw.INGRESS_CNAME
      ? { cname: raw.INGRESS_CNAME }
      : { ipv4: raw.INGRESS_IPV4 ?? '127.0.0.1', ...(raw.INGRESS_IPV6 ? { ipv6: raw.INGRESS_IPV6 } : {}) },
    dnsProvider: raw.DNS_PROVIDER,
    cloudflare:
      raw.DNS_PROVIDER === 'cloudflare' && raw.CLOUDFLARE_API_TOKEN && raw.CLOUDFLARE_ZONE_ID
        ? {
            apiToken: raw.CLOUDFLARE_API_TOKEN,
            zoneId: raw.CLOUDFLARE_ZONE_ID,
            apiUrl: raw.CLOUDFLARE_API_URL.replace(/\/+$/, ''),
          }
        : undefined,
    certProvider: raw.CERT_PROVIDER,
    acme:
      raw.CERT_PROVIDER === 'acme' && raw.ACME_EMAIL
        ? { directoryUrl: raw.ACME_DIRECTORY_URL, email: raw.ACME_EMAIL }
        : undefined,
    adminEmail: raw.ONRAMP_ADMIN_EMAIL,
    ...secrets,
    redisUrl: raw.REDIS_URL,
    metricsToken: raw.METRICS_TOKEN,
    faultInjection: raw.FAULT_INJECTION,
    clinicPoolSize: raw.CLINIC_POOL_SIZE,
    loginCodeSendLimits: raw.LOGIN_CODE_SEND_LIMITS === 'on',
    trustedProxies: raw.TRUSTED_PROXIES,
    publicUrl: (raw.PUBLIC_URL ?? `http://localhost:${raw.PORT || 4000}`).replace(/\/+$/, ''),
    provisioningRetryBaseMs: raw.PROVISIONING_RETRY_BASE_MS,
    webhookRetryBaseMs: raw.WEBHOOK_RETRY_BASE_MS,
    webhookAllowPrivateTargets: raw.WEBHOOK_ALLOW_PRIVATE_TARGETS === '1',
    provisioningLeaseSeconds: raw.PROVISIONING_LEASE_SECONDS,
    clinicHealthConcurrency: raw.CLINIC_HEALTH_CONCURRENCY,
    clinicMigrationsDir: raw.CLINIC_MIGRATIONS_DIR,
    clinicRolloutAtStart: raw.CLINIC_ROLLOUT_AT_START,
    clinicHealthIntervalSeconds: raw.CLINIC_HEALTH_INTERVAL_SECONDS,
    clinicDeepCheckPeriodSeconds: raw.CLINIC_DEEP_CHECK_PERIOD,
    allowedHosts: raw.ALLOWED_HOSTS,
    hashSlotsPerAddress: raw.HASH_SLOTS_PER_ADDRESS,
    corsOrigins: raw.CORS_ORIGINS,
    logLevel: raw.LOG_LEVEL ?? (raw.ONRAMP_ENV === 'test' ? 'warn' : 'info'),
    onboardingLimits: {
      start: raw.ONBOARDING_START_LIMIT,
      provision: raw.ONBOARDING_PROVISION_LIMIT,
      status: raw.ONBOARDING_STATUS_LIMIT,
      ip: raw.ONBOARDING_IP_LIMIT,
    },
    registrationLimits: { ip: raw.REGISTRATION_IP_LIMIT, total: raw.REGISTRATION_TOTAL_LIMIT },
    invitationLimits: { clinic: raw.INVITATION_CLINIC_LIMIT, total: raw.INVITATION_TOTAL_LIMIT },
    unverifiedClinicTtlSeconds: raw.UNVERIFIED_CLINIC_TTL,
    clinicTrashRetentionSeconds: raw.CLINIC_TRASH_RETENTION,
    clinicDeleteRetentionSeconds: raw.CLINIC_DELETE_RETENTION,
    consentVersions: { TERMS: raw.CONSENT_TERMS_VERSION, PRIVACY: raw.CONSENT_PRIVACY_VERSION },
  };
}

/** Combinations that cannot work in any environment (DNS, certificates). */
function providerProblems(raw: RawEnv): string[] {
  const problems: string[] = [];
  if (raw.INGRESS_CNAME && (raw.INGRESS_IPV4 || raw.INGRESS_IPV6)) {
    problems.push('INGRESS_CNAME: cannot be combined with INGRESS_IPV4/INGRESS_IPV6 (a CNAME stands alone)');
  }
  if (raw.DNS_PROVIDER === 'cloudflare') {
    if (!raw.CLOUDFLARE_API_TOKEN)
      problems.push('CLOUDFLARE_API_TOKEN: required when DNS_PROVIDER=cloudflare');
    if (!raw.CLOUDFLARE_ZONE_ID) problems.push('CLOUDFLARE_ZONE_ID: required when DNS_PROVIDER=cloudflare');
  }
  if (raw.CERT_PROVIDER === 'acme') {
    if (!raw.ACME_EMAIL) problems.push('ACME_EMAIL: required when CERT_PROVIDER=acme');
    // dns-01 challenges are answered by whoever serves the zone; with the built-in provider that is us.
    if (raw.DNS_PROVIDER === 'builtin' && raw.DNS_PORT === 0) {
      problems.push(
        'DNS_PORT: CERT_PROVIDER=acme with the built-in DNS provider needs the DNS server (not 0)',
      );
    }
  }
  return problems;
}

function productionProblems(raw: RawEnv): string[] {
  if (raw.ONRAMP_ENV !== 'production') return [];
  const problems: string[] = [];
  const require = (value: unknown, name: string, why: string) => {
    if (value === undefined) problems.push(`${name}: required in production (${why})`);
  };
  require(raw.JWT_SECRET, 'JWT_SECRET', 'sessions must not be signed with a generated key');
  require(raw.ENCRYPTION_KEY, 'ENCRYPTION_KEY', 'stored secrets must survive a new data dir');
  require(raw.SMTP_URL, 'SMTP_URL', 'the dev mailbox never delivers mail');
  require(raw.SMS_GATEWAY_URL, 'SMS_GATEWAY_URL', 'the dev outbox never delivers SMS');
  if (!raw.DATABASE_URL && raw.ONRAMP_EMBEDDED_DATABASE !== '1') {
    problems.push(
      'DATABASE_URL: required in production (without it Onramp would keep every clinic in an embedded ' +
        'PostgreSQL under ONRAMP_DATA_DIR); set ONRAMP_EMBEDDED_DATABASE=1 if that is meant',
    );
  }
  if (raw.FAULT_INJECTION.length > 0) problems.push('FAULT_INJECTION: refused in production');
  if (raw.WEBHOOK_ALLOW_PRIVATE_TARGETS === '1')
    problems.push('WEBHOOK_ALLOW_PRIVATE_TARGETS: refused in production');
  if (raw.LOGIN_CODE_SEND_LIMITS === 'off')
    problems.push('LOGIN_CODE_SEND_LIMITS: off is refused in production');
  return problems;
}

interface StoredSecrets {
  jwtSecret: string;
  encryptionKey: string;
}

function devSecrets(dataDir: string, raw: RawEnv): { jwtSecret: string; encryptionKey: Buffer } {
  const file = join(dataDir, 'secrets.json');
  let stored: StoredSecrets;
  if (existsSync(file)) {
    stored = JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  } else {
    stored = {
      jwtSecret: randomBytes(48).toString('base64url'),
      encryptionKey: randomBytes(32).toString('hex'),
    };
    mkdirSync(dataDir, { recursive: true });
    // 'wx' fails if another process created the file meanwhile; then read theirs.
    try {
      writeFileSync(file, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      stored = JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
    }
    chmodSync(file, 0o600);
  }
  return {
    jwtSecret: raw.JWT_SECRET ?? stored.jwtSecret,
    encryptionKey: raw.ENCRYPTION_KEY ?? Buffer.from(stored.encryptionKey, 'hex'),
  };
}

/** postgres://user:secret@host/db → postgres://user:***@host/db, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}
