import { getIntrospectionQuery } from 'graphql';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestApp, tempDir, wsQuery } from '../test/harness.js';
import { MAX_BODY_BYTES } from './http/security.js';

const HEALTH = '{ health { status checks { name ok } } }';

describe('the HTTP server', async () => {
  const t = await startTestApp({ CORS_ORIGINS: 'https://console.example.com' });

  it('answers { health { status } } over HTTP', async () => {
    const { status, body } = await t.gql(HEALTH);
    expect(status).toBe(200);
    expect(body).toEqual({
      data: {
        health: {
          status: 'OK',
          checks: [
            { name: 'central_database', ok: true },
            { name: 'event_bus', ok: true },
          ],
        },
      },
    });
  });

  it('serves /healthz, /readyz and /metrics', async () => {
    expect(await (await fetch(`${t.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.url}/readyz`);
    expect(ready.status).toBe(200);
    await t.gql('query HealthProbe { health { status } }');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('onramp_process_resident_memory_bytes');
    expect(metrics).toMatch(
      /onramp_graphql_operation_duration_seconds_count\{operation_name="HealthProbe",operation_type="query",outcome="ok"\} 1/,
    );
  });

  it('sets security headers and a request id', async () => {
    const response = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'abc12345-trace' } });
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(response.headers.get('x-request-id')).toBe('abc12345-trace');
    const generated = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('refuses a simple GET without a CSRF header, and accepts it with one', async () => {
    const url = `${t.url}/graphql?query=${encodeURIComponent('{ health { status } }')}`;
    expect((await fetch(url, { headers: { accept: 'application/json' } })).status).toBe(403);
    const ok = await fetch(url, { headers: { accept: 'application/json', 'x-graphql-yoga-csrf': '1' } });
    expect(ok.status).toBe(200);
  });

  it('allows configured origins only', async () => {
    const preflight = (origin: string) =>
      fetch(`${t.url}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      });
    const allowed = await preflight('https://console.example.com');
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example.com');
    const denied = await preflight('https://evil.example.com');
    expect(denied.headers.get('access-control-allow-origin')).toBeNull();
    const post = await t.gql(HEALTH, undefined, { origin: 'https://evil.example.com' });
    expect(post.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('rejects bodies over the limit with 413 before parsing them', async () => {
    const { request } = await import('node:http');
    const url = new URL(`${t.url}/graphql`);
    // Only the headers are sent: an answer can only come from the declared length, unread.
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': MAX_BODY_BYTES + 1 },
        },
        (res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          req.destroy();
        },
      );
      req.on('error', reject);
      req.flushHeaders();
    });
    expect(status).toBe(413);
  });

  it('rejects abusive operations without revealing the limits', async () => {
    const deep = `{ health { checks { ${'name { '.repeat(12)}x${' }'.repeat(12)} } } }`;
    const tooDeep = await t.gql(deep);
    expect(tooDeep.body.data).toBeUndefined();
    expect(tooDeep.body.errors?.map((error) => error.message)).toContain(
      'Syntax Error: Query validation error.',
    );

    const aliases = `{ ${Array.from({ length: 40 }, (_, i) => `a${i}: health { status }`).join(' ')} }`;
    const aliased = await t.gql(aliases);
    expect(aliased.body.data).toBeUndefined();
    const message = aliased.body.errors?.[0]?.message ?? '';
    expect(message).not.toMatch(/\d/);

    const tokens = `{ health { ${'status '.repeat(4000)} } }`;
    const tokenised = await t.gql(tokens);
    expect(tokenised.body.data).toBeUndefined();
    expect(tokenised.body.errors?.[0]?.message ?? '').not.toMatch(/\d/);
  });

  it('does not suggest field names to explorers', async () => {
    const { body } = await t.gql('{ healt { status } }');
    expect(body.errors?.[0]?.message).not.toMatch(/Did you mean/);
  });

  it('allows introspection and GraphiQL outside production', async () => {
    const { body } = await t.gql(getIntrospectionQuery());
    expect(body.errors).toBeUndefined();
    const page = await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('Onramp GraphiQL');
    expect(html).not.toContain('unpkg.com'); // served locally, works offline
  });

  it('runs operations over graphql-ws on the same path', async () => {
    const result = await wsQuery<{ health: { status: string } }>(t.ws(), '{ health { status } }');
    expect(result).toEqual({ data: { health: { status: 'OK' } } });
  });

  it('refuses WebSocket upgrades from foreign origins', async () => {
    const socket = new WebSocket(`${t.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', {
      headers: { origin: 'https://evil.example.com' },
    });
    const outcome = await new Promise<string>((resolve) => {
      socket.on('open', () => resolve('open'));
      socket.on('error', (error) => resolve(error.message));
    });
    expect(outcome).toMatch(/403/);
  });

  it('answers unknown paths with 404 JSON', async () => {
    const response = await fetch(`${t.url}/nope`, { headers: { accept: 'application/json' } });
    expect(response.status).toBe(404);
  });
});

describe('production mode', async () => {
  const t = await startTestApp({
    ONRAMP_ENV: 'production',
    SMTP_URL: 'smtp://127.0.0.1:2525',
    SMS_GATEWAY_URL: 'http://127.0.0.1:9/sms',
  });

  it('disables introspection and GraphiQL', async () => {
    const { body } = await t.gql('{ __schema { types { name } } }');
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0]?.message).toMatch(/introspection/i);
    const page = await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(await page.text()).not.toContain('GraphiQL');
    expect((await t.gql(HEALTH)).body).toEqual({
      data: {
        health: {
          status: 'OK',
          checks: [
            { name: 'central_database', ok: true },
            { name: 'event_bus', ok: true },
          ],
        },
      },
    });
  });

  it('disables introspection over WebSocket and through __type as well', async () => {
    const refused = (answer: { data?: unknown; errors?: readonly { message: string }[] }) => {
      expect(answer.data ?? null).toBeNull();
      expect(answer.errors?.[0]?.message).toMatch(/introspection/i);
    };
    refused((await t.gql('{ __type(name: "Query") { fields { name } } }')).body);
    for (const query of [getIntrospectionQuery(), '{ __type(name: "Mutation") { fields { name } } }']) {
      // A validation failure ends the operation with an `error` message: wsQuery rejects with it.
      const answer = await wsQuery(t.ws(), query).catch((errors: readonly { message: string }[]) => ({
        errors,
      }));
      refused(answer);
    }
    // __typename is not introspection.
    expect(await wsQuery(t.ws(), '{ __typename }')).toEqual({ data: { __typename: 'Query' } });
  });

  it('refuses injectFault, devMailbox and devSmsOutbox, to super-admins as well, and injects nothing', async () => {
    const superAdmin = await t.superAdmin();
    for (const operation of [
      'mutation { injectFault(step: create_database) { __typename } }',
      '{ devMailbox(to: "admin@onramp.localhost") { id } }',
      '{ devSmsOutbox(to: "+33612345678") { to } }',
    ]) {
      const asSuperAdmin = await t.gql(operation, undefined, superAdmin);
      expect(asSuperAdmin.body.data ?? null).toBeNull();
      expect(asSuperAdmin.body.errors?.map((error) => error.extensions?.code)).toEqual(['FORBIDDEN']);
      const anonymous = await t.gql(operation);
      expect(anonymous.body.data ?? null).toBeNull();
      expect(anonymous.body.errors?.map((error) => error.extensions?.code)).toEqual([
        expect.stringMatching(/^(UNAUTHENTICATED|FORBIDDEN)$/),
      ]);
    }
    expect(t.app.deps.provisioning.faults.pending()).toEqual({});
  });

  it('sends HSTS', async () => {
    const response = await fetch(`${t.url}/healthz`);
    expect(response.headers.get('strict-transport-security')).toMatch(/max-age=/);
  });
});

describe('graceful stop', async () => {
  const t = await startTestApp();

  it('finishes in-flight requests, closes WebSockets with 1001, then refuses connections', async () => {
    const { request } = await import('node:http');
    const body = JSON.stringify({ query: '{ health { status } }' });
    const url = new URL(`${t.url}/graphql`);

    const socket = new WebSocket(`${t.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve) => socket.on('open', resolve));
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));

    // A request whose body is still arriving when stop() begins. `Expect: 100-continue` makes the
    // server say when it has taken the request in (it answers 100 as it dispatches it).
    let dispatched: () => void = () => {};
    const inside = new Promise<void>((resolve) => {
      dispatched = resolve;
    });
    let sendRest: () => void = () => {};
    const inFlight = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            expect: '100-continue',
          },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.on('continue', () => {
        req.write(body.slice(0, 10));
        dispatched();
      });
      sendRest = () => req.end(body.slice(10));
      req.flushHeaders();
    });
    await inside;

    const stopping = t.app.stop();
    // The WebSocket's close says stop() has begun; only then does the request's body complete.
    expect(await closed).toBe(1001);
    sendRest();
    const finished = await inFlight;
    expect(finished.status).toBe(200);
    expect(JSON.parse(finished.text)).toEqual({ data: { health: { status: 'OK' } } });
    await stopping;
    await expect(fetch(`${t.url}/healthz`)).rejects.toThrow();
  });
});

describe('the console', async () => {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = tempDir('onramp-console-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Onramp console</title>');
  writeFileSync(join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
  writeFileSync(join(tmpdir(), 'outside-console.txt'), 'secret');
  const t = await startTestApp({}, { consoleDir: dir });

  it('serves index.html at / and for client-side routes, fingerprinted assets as immutable', async () => {
    const root = await fetch(`${t.url}/`);
    expect(await root.text()).toContain('Onramp console');
    expect(root.headers.get('content-type')).toMatch(/text\/html/);
    const route = await fetch(`${t.url}/clinics/42`, { headers: { accept: 'text/html' } });
    expect(await route.text()).toContain('Onramp console');
    const asset = await fetch(`${t.url}/assets/app-1234.js`);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect(asset.headers.get('content-type')).toMatch(/javascript/);
  });

  it('never serves files outside its folder', async () => {
    const response = await fetch(`${t.url}/..%2Foutside-console.txt`, {
      headers: { accept: 'application/json' },
    });
    expect(response.status).toBe(404);
    expect(await response.text()).not.toContain('secret');
  });
});
