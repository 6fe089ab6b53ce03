/**
 * The Cloudflare adapter against a local fake of the records API (node:http): the only thing
 * faked is the third-party HTTP service, as everywhere in Onramp's tests.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../env.js';
import { createLogger } from '../../logger.js';
import { CloudflareDnsProvider, CloudflareError } from './cloudflare.js';
import type { Ingress } from './provider.js';

const TOKEN = 'cf-test-token-4b1d';
const ZONE_ID = 'zone-123';

interface FakeRecord {
  id: string;
  name: string;
  type: string;
  content: string;
  ttl: number;
  proxied?: boolean;
}

type Fault = 429 | 500 | 'hang' | 'error-envelope';

/** A small fake of `/zones/:zone/dns_records`: list (name/type filters), create, update, delete. */
function fakeCloudflare() {
  const records = new Map<string, FakeRecord>();
  const faults: Fault[] = [];
  const log: string[] = [];
  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const ok = (res: ServerResponse, result: unknown) =>
    send(res, 200, { success: true, errors: [], messages: [], result });
  const fail = (res: ServerResponse, status: number, code: number, message: string) =>
    send(res, status, { success: false, errors: [{ code, message }], messages: [], result: null });

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? '/', 'http://fake');
    log.push(`${req.method} ${url.pathname}`);
    const fault = faults.shift();
    if (fault === 'hang') return; // never answers: the client's timeout must fire
    if (fault === 429)
      return fail(res, 429, 10000, 'Rate limited. Please wait and consider throttling your request speed');
    if (fault === 500) return send(res, 502, { message: 'bad gateway' });
    if (fault === 'error-envelope') return fail(res, 400, 81057, 'Record already exists.');
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return fail(res, 403, 10000, 'Authentication error');
    const match = /^\/client\/v4\/zones\/([^/]+)\/dns_records(?:\/([^/]+))?$/.exec(url.pathname);
    if (!match || match[1] !== ZONE_ID) return fail(res, 404, 7003, 'Could not route to /zones');
    const id = match[2];
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Partial<FakeRecord>) : {};
    if (req.method === 'GET' && !id) {
      const name = url.searchParams.get('name');
      const type = url.searchParams.get('type');
      return ok(
        res,
        [...records.values()].filter((r) => (!name || r.name === name) && (!type || r.type === type)),
      );
    }
    if (req.method === 'POST' && !id) {
      const record = { ...(body as FakeRecord), id: randomUUID().replaceAll('-', '') };
      // Cloudflare returns TXT content quoted; the adapter must compare unquoted values.
      if (record.type === 'TXT') record.content = `"${record.content}"`;
      records.set(record.id, record);
      return ok(res, record);
    }
    if (!id || !records.has(id)) return fail(res, 404, 81044, 'Record does not exist.');
    if (req.method === 'PUT') {
      const record = { ...(body as FakeRecord), id };
      records.set(id, record);
      return ok(res, record);
    }
    if (req.method === 'DELETE') {
      records.delete(id);
      return ok(res, { id });
    }
    return fail(res, 405, 10000, 'method not allowed');
  });
  return { server, records, faults, log };
}

const fake = fakeCloudflare();
await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
afterAll(() => {
  fake.server.closeAllConnections();
  return new Promise<void>((resolve) => fake.server.close(() => resolve()));
});
const apiUrl = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}/client/v4`;
const logger = createLogger({ env: 'test', logLevel: 'silent' });

function provider(
  ingress: Ingress = { ipv4: '192.0.2.1' },
  extra: Partial<{ timeoutMs: number; maxAttempts: number; apiToken: string }> = {},
) {
  return new CloudflareDnsProvider({
    apiToken: TOKEN,
    zoneId: ZONE_ID,
    apiUrl,
    ingress,
    logger,
    backoffMs: 5,
    ...extra,
  });
}

const recordsOf = (name: string) =>
  [...fake.records.values()]
    .filter((record) => record.name === name)
    .map(({ type, content, ttl }) => ({ type, content, ttl }))
    .sort((a, b) => a.type.localeCompare(b.type));
const writes = () => fake.log.filter((line) => !line.startsWith('GET'));

beforeEach(() => {
  fake.records.clear();
  fake.faults.length = 0;
  fake.log.length = 0;
});

describe('CloudflareDnsProvider', () => {
  it('publishes A and AAAA records, not proxied, and publishing again writes nothing', async () => {
    const cf = provider({ ipv4: '192.0.2.1', ipv6: '2001:db8::1' });
    const published = await cf.publishSubdomain('Clinic.Example.com.');
    expect(published.map((r) => `${r.name} ${r.type} ${r.value}`)).toEqual([
      'clinic.example.com A 192.0.2.1',
      'clinic.example.com AAAA 2001:db8::1',
    ]);
    expect(recordsOf('clinic.example.com')).toEqual([
      { type: 'A', content: '192.0.2.1', ttl: 300 },
      { type: 'AAAA', content: '2001:db8::1', ttl: 300 },
    ]);
    expect([...fake.records.values()].every((record) => record.proxied === false)).toBe(true);
    fake.log.length = 0;
    await cf.publishSubdomain('clinic.example.com');
    expect(writes()).toEqual([]);
  });

  it('updates records in place when the ingress moves, and swaps A for a CNAME', async () => {
    await provider({ ipv4: '192.0.2.1', ipv6: '2001:db8::1' }).publishSubdomain('clinic.example.com');
    fake.log.length = 0;
    await provider({ ipv4: '192.0.2.99' }).publishSubdomain('clinic.example.com');
    expect(recordsOf('clinic.example.com')).toEqual([{ type: 'A', content: '192.0.2.99', ttl: 300 }]);
    expect(writes().map((line) => line.split(' ')[0])).toEqual(['PUT', 'DELETE']);
    await provider({ cname: 'ingress.example.net' }).publishSubdomain('clinic.example.com');
    expect(recordsOf('clinic.example.com')).toEqual([
      { type: 'CNAME', content: 'ingress.example.net', ttl: 300 },
    ]);
  });

  it('sets and clears ACME TXT values idempotently, and unpublish removes everything of the name', async () => {
    const cf = provider();
    await cf.publishSubdomain('clinic.example.com');
    await cf.setTxt('_acme-challenge.clinic.example.com', ['token-a', 'token-b']);
    fake.log.length = 0;
    await cf.setTxt('_acme-challenge.clinic.example.com', ['token-a', 'token-b']);
    expect(writes()).toEqual([]); // the fake quotes TXT content; equal values must still match
    await cf.setTxt('_acme-challenge.clinic.example.com', ['token-b', 'token-c']);
    expect(
      recordsOf('_acme-challenge.clinic.example.com')
        .map((r) => r.content)
        .sort(),
    ).toEqual(['"token-b"', '"token-c"']);
    await cf.clearTxt('_acme-challenge.clinic.example.com');
    expect(recordsOf('_acme-challenge.clinic.example.com')).toEqual([]);
    await cf.setTxt('_acme-challenge.clinic.example.com', ['token-d']);
    await cf.unpublishSubdomain('clinic.example.com');
    await cf.unpublishSubdomain('clinic.example.com');
    expect(fake.records.size).toBe(0);
  });

  it('retries 429 and 5xx answers with backoff, then succeeds', async () => {
    fake.faults.push(429, 500, 429);
    await provider().publishSubdomain('retry.example.com');
    expect(recordsOf('retry.example.com')).toEqual([{ type: 'A', content: '192.0.2.1', ttl: 300 }]);
    expect(fake.log.slice(0, 4)).toEqual(Array(4).fill(`GET /client/v4/zones/${ZONE_ID}/dns_records`));
  });

  it('gives up after its attempts on persistent 5xx', async () => {
    fake.faults.push(500, 500, 500);
    const error = await provider({ ipv4: '192.0.2.1' }, { maxAttempts: 3 })
      .publishSubdomain('down.example.com')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudflareError);
    expect((error as CloudflareError).status).toBe(502);
    expect(fake.log).toHaveLength(3);
  });

  it('fails at once on an error envelope, with Cloudflare’s code and never the token', async () => {
    fake.faults.push('error-envelope');
    const error = await provider()
      .setTxt('_acme-challenge.x.example.com', ['v'])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CloudflareError);
    expect((error as Error).message).toContain('81057: Record already exists.');
    expect((error as Error).message).not.toContain(TOKEN);
    expect(fake.log).toHaveLength(1); // a 400 is not retried
  });

  it('rejects a wrong token with the 403 envelope', async () => {
    const error = await provider(undefined, { apiToken: 'wrong' })
      .publishSubdomain('clinic.example.com')
      .catch((e: unknown) => e);
    expect((error as CloudflareError).status).toBe(403);
    expect((error as Error).message).toContain('Authentication error');
  });

  it('times out a request that never answers, retries it, then fails', async () => {
    fake.faults.push('hang', 'hang');
    const started = Date.now();
    const error = await provider(undefined, { timeoutMs: 150, maxAttempts: 2 })
      .unpublishSubdomain('slow.example.com')
      .catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/timed out after 150 ms/);
    expect(fake.log).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('recovers when a timeout is followed by an answer', async () => {
    fake.faults.push('hang');
    await provider(undefined, { timeoutMs: 150 }).publishSubdomain('flaky.example.com');
    expect(recordsOf('flaky.example.com')).toHaveLength(1);
  });
});

describe('DNS_PROVIDER configuration', () => {
  const base = {
    ONRAMP_DATA_DIR: '/nonexistent-onramp',
    JWT_SECRET: 'x'.repeat(40),
    ENCRYPTION_KEY: '11'.repeat(32),
  };
  const problems = (env: Record<string, string>) => {
    try {
      loadConfig({ ...base, ...env });
      return [];
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      return error.problems;
    }
  };

  it('refuses cloudflare without its token and zone, reporting both (production and elsewhere)', () => {
    for (const env of ['production', 'development']) {
      const found = problems({
        ONRAMP_ENV: env,
        DNS_PROVIDER: 'cloudflare',
        SMTP_URL: 'smtp://127.0.0.1:25',
        SMS_GATEWAY_URL: 'https://sms.example.com',
        // Production refuses the embedded database unless told it is meant (issue 15 item 15).
        DATABASE_URL: 'postgres://onramp@db.example.com/onramp',
      });
      expect(found).toEqual([
        'CLOUDFLARE_API_TOKEN: required when DNS_PROVIDER=cloudflare',
        'CLOUDFLARE_ZONE_ID: required when DNS_PROVIDER=cloudflare',
      ]);
    }
  });

  it('reads cloudflare settings, with the public API as default URL', () => {
    const config = loadConfig({
      ...base,
      ONRAMP_ENV: 'test',
      DNS_PROVIDER: 'cloudflare',
      CLOUDFLARE_API_TOKEN: TOKEN,
      CLOUDFLARE_ZONE_ID: ZONE_ID,
    });
    expect(config.cloudflare).toEqual({
      apiToken: TOKEN,
      zoneId: ZONE_ID,
      apiUrl: 'https://api.cloudflare.com/client/v4',
    });
  });

  it('refuses an ingress CNAME together with addresses, and bad addresses', () => {
    expect(
      problems({ ONRAMP_ENV: 'test', INGRESS_CNAME: 'lb.example.net', INGRESS_IPV4: '192.0.2.1' }),
    ).toEqual(['INGRESS_CNAME: cannot be combined with INGRESS_IPV4/INGRESS_IPV6 (a CNAME stands alone)']);
    expect(problems({ ONRAMP_ENV: 'test', INGRESS_IPV4: '300.1.1.1', INGRESS_IPV6: 'nope' })).toHaveLength(2);
    expect(loadConfig({ ...base, ONRAMP_ENV: 'test' }).ingress).toEqual({ ipv4: '127.0.0.1' });
  });
});
