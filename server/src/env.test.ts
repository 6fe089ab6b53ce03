import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/harness.js';
import { REPO_ROOT } from './db/paths.js';
import { CONFIG_VARIABLES, ConfigError, loadConfig, redactUrl } from './env.js';

const tmp = () => tempDir('onramp-env-');
const PRODUCTION = {
  ONRAMP_ENV: 'production',
  JWT_SECRET: 'x'.repeat(40),
  ENCRYPTION_KEY: 'ab'.repeat(32),
  SMTP_URL: 'smtp://mail.example.com:587',
  SMS_GATEWAY_URL: 'https://sms.example.com/send',
  DATABASE_URL: 'postgres://onramp:secret@db.internal:5432/onramp',
};

const PRODUCTION_SECRETS = { JWT_SECRET: PRODUCTION.JWT_SECRET, ENCRYPTION_KEY: PRODUCTION.ENCRYPTION_KEY };

function problems(env: Record<string, string>, cwd = tmp()): string[] {
  try {
    loadConfig(env, cwd);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it("applies the defaults of the README's Configuration table", () => {
    const cwd = tmp();
    const config = loadConfig({}, cwd);
    expect(config).toMatchObject({
      env: 'development',
      databaseUrl: undefined,
      clinicDatabaseServers: [],
      port: 4000,
      host: '127.0.0.1',
      dataDir: join(cwd, '.onramp'),
      registrationMode: 'strict',
      smtpUrl: undefined,
      smsGatewayUrl: undefined,
      baseDomain: 'onramp.localhost',
      dnsPort: 5354,
      adminEmail: 'admin@onramp.localhost',
      redisUrl: undefined,
      faultInjection: [],
      clinicPoolSize: 2,
      loginCodeSendLimits: true,
      corsOrigins: [],
      logLevel: 'info',
    });
  });

  it('parses every variable', () => {
    const config = loadConfig(
      {
        DATABASE_URL: 'postgresql://u:p@db:5432/central',
        CLINIC_DATABASE_SERVERS: 'postgres://a@one:5432/postgres, postgres://b@two:6543/postgres',
        PORT: '8080',
        HOST: '0.0.0.0',
        ONRAMP_ENV: 'test',
        REGISTRATION_MODE: 'hybrid',
        SMTP_URL: 'smtp://127.0.0.1:2525',
        SMS_GATEWAY_URL: 'http://127.0.0.1:9000/sms',
        BASE_DOMAIN: 'Clinics.Example.com',
        DNS_PORT: '0',
        ONRAMP_ADMIN_EMAIL: '  Root@Example.com ',
        REDIS_URL: 'redis://127.0.0.1:6379',
        FAULT_INJECTION: 'create_database, seed_provider',
        CORS_ORIGINS: 'https://app.example.com',
        ...{ JWT_SECRET: 'j'.repeat(32), ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64') },
      },
      tmp(),
    );
    expect(config.clinicDatabaseServers).toEqual([
      'postgres://a@one:5432/postgres',
      'postgres://b@two:6543/postgres',
    ]);
    expect(config.baseDomain).toBe('clinics.example.com');
    expect(config.adminEmail).toBe('root@example.com');
    expect(config.faultInjection).toEqual(['create_database', 'seed_provider']);
    expect(config.encryptionKey).toEqual(Buffer.alloc(32, 7));
    expect(config.dnsPort).toBe(0);
    expect(config.registrationMode).toBe('hybrid');
  });

  it('reports every problem at once', () => {
    const found = problems({
      DATABASE_URL: 'mysql://nope',
      PORT: 'eighty',
      ONRAMP_ENV: 'staging',
      REGISTRATION_MODE: 'eventual',
      FAULT_INJECTION: 'create_database,teleport',
      ENCRYPTION_KEY: 'too-short',
      CORS_ORIGINS: 'https://ok.example.com,not a url',
    });
    expect(found).toHaveLength(7);
    expect(found.join('\n')).toMatch(/DATABASE_URL/);
    expect(found.join('\n')).toMatch(/unknown step "teleport"/);
    expect(found.join('\n')).toMatch(/ENCRYPTION_KEY: must be 32 bytes/);
    expect(found.join('\n')).toMatch(/"not a url" is not an origin/);
  });

  it('refuses to start in production without secrets or real transports, and refuses fault injection and unlimited code sends', () => {
    const found = problems({
      ONRAMP_ENV: 'production',
      FAULT_INJECTION: 'dns',
      LOGIN_CODE_SEND_LIMITS: 'off',
    });
    expect(found).toEqual([
      expect.stringMatching(/^JWT_SECRET: required in production/),
      expect.stringMatching(/^ENCRYPTION_KEY: required in production/),
      expect.stringMatching(/^SMTP_URL: required in production/),
      expect.stringMatching(/^SMS_GATEWAY_URL: required in production/),
      expect.stringMatching(/^DATABASE_URL: required in production .*ONRAMP_EMBEDDED_DATABASE=1/),
      'FAULT_INJECTION: refused in production',
      'LOGIN_CODE_SEND_LIMITS: off is refused in production',
    ]);
    expect(loadConfig({ LOGIN_CODE_SEND_LIMITS: 'off' }, tmp()).loginCodeSendLimits).toBe(false);
    expect(problems(PRODUCTION)).toEqual([]);
  });

  it('refuses the embedded PostgreSQL in production unless ONRAMP_EMBEDDED_DATABASE=1 says it is meant', () => {
    const { DATABASE_URL: _, ...embedded } = PRODUCTION;
    expect(problems(embedded)).toEqual([
      expect.stringMatching(/^DATABASE_URL: required in production .*ONRAMP_EMBEDDED_DATABASE=1/),
    ]);
    expect(problems({ ...embedded, ONRAMP_EMBEDDED_DATABASE: '1' })).toEqual([]);
    expect(problems({ ...embedded, ONRAMP_EMBEDDED_DATABASE: 'yes' })).toEqual([
      'ONRAMP_EMBEDDED_DATABASE: must be 0 or 1',
    ]);
    expect(problems({ ONRAMP_ENV: 'development' })).toEqual([]);
  });

  it('never writes generated secrets in production', () => {
    const cwd = tmp();
    loadConfig(PRODUCTION, cwd);
    expect(existsSync(join(cwd, '.onramp', 'secrets.json'))).toBe(false);
  });

  it('generates development secrets once into the data dir, private, and reuses them', () => {
    const cwd = tmp();
    const first = loadConfig({}, cwd);
    const file = join(cwd, '.onramp', 'secrets.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const second = loadConfig({}, cwd);
    expect(second.jwtSecret).toBe(first.jwtSecret);
    expect(second.encryptionKey).toEqual(first.encryptionKey);
    expect(first.encryptionKey).toHaveLength(32);
    expect(readFileSync(file, 'utf8')).toContain(first.jwtSecret);
    // An explicit secret wins over the stored one.
    expect(loadConfig({ JWT_SECRET: 'e'.repeat(32) }, cwd).jwtSecret).toBe('e'.repeat(32));
  });

  it('resolves a relative data dir from the repository root, wherever the command runs (workspace scripts run in server/)', () => {
    const config = loadConfig({ ONRAMP_ENV: 'test', ...PRODUCTION_SECRETS });
    expect(config.dataDir).toBe(join(REPO_ROOT, '.onramp'));
    expect(
      loadConfig({ ONRAMP_ENV: 'test', ONRAMP_DATA_DIR: 'var/data', ...PRODUCTION_SECRETS }).dataDir,
    ).toBe(join(REPO_ROOT, 'var', 'data'));
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }, tmp())).toMatchObject({
      databaseUrl: undefined,
      port: 4000,
    });
  });

  it('never prints a password in a URL', () => {
    expect(redactUrl('postgres://user:hunter2@db:5432/x')).toBe('postgres://user:***@db:5432/x');
    const found = problems({ CLINIC_DATABASE_SERVERS: 'mysql://user:hunter2@db/x' });
    expect(found.join()).not.toContain('hunter2');
  });
});

describe("the README's configuration table", () => {
  /** Variable names in the first column of the table under `## Configuration`. */
  function documentedVariables(): string[] {
    const readme = readFileSync(resolve(REPO_ROOT, 'README.md'), 'utf8');
    const section = readme.split(/^## Configuration$/m)[1]?.split(/^## /m)[0] ?? '';
    const rows = section.split('\n').filter((line) => /^\|\s*`/.test(line));
    return rows.flatMap((row) =>
      [...(row.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] as string),
    );
  }

  it('lists every variable env.ts reads, and only those', () => {
    const documented = documentedVariables();
    expect(documented.length).toBeGreaterThan(40);
    expect(documented.filter((name) => !CONFIG_VARIABLES.includes(name))).toEqual([]);
    expect(CONFIG_VARIABLES.filter((name) => !documented.includes(name))).toEqual([]);
    expect(new Set(documented).size).toBe(documented.length);
  });
});

describe('the server with a bad configuration', () => {
  it('exits with 78 (EX_CONFIG), every problem on stderr, before it touches a database', async () => {
    const cwd = tmp();
    const child = spawn(process.execPath, ['--import', 'tsx', resolve(REPO_ROOT, 'server/src/main.ts')], {
      cwd: resolve(REPO_ROOT, 'server'),
      env: {
        PATH: process.env.PATH ?? '',
        ONRAMP_ENV: 'production',
        ONRAMP_DATA_DIR: join(cwd, 'data'),
        FAULT_INJECTION: 'dns',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.resume();
    const code = await new Promise<number | null>((done) => child.once('exit', done));
    expect({ code, stderr }).toMatchObject({ code: 78 });
    for (const name of ['JWT_SECRET', 'ENCRYPTION_KEY', 'SMTP_URL', 'SMS_GATEWAY_URL', 'FAULT_INJECTION'])
      expect(stderr).toContain(name);
    // Nothing was started: no embedded database under the data dir.
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  }, 60_000);
});
