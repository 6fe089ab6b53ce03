/**
 * Host names (DNS rebinding) and the development tools: over HTTP and WebSocket, as a browser on a
 * rebinding domain or an anonymous caller would reach them.
 */
import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestApp, TEST_SECRETS, wsQuery } from '../../test/harness.js';
import { createClinic, verifyAndSignIn } from '../../test/registration-flow.js';
import { ConfigError, loadConfig } from '../env.js';

interface RawResponse {
  status: number;
  body: string;
}

describe('ALLOWED_HOSTS', () => {
  it('takes names, addresses and .domains, and refuses anything else', () => {
    const config = loadConfig({
      ...TEST_SECRETS,
      ALLOWED_HOSTS: 'Api.Example.org., .clinics.example.net, 10.0.0.8, [2001:db8::1]',
    });
    expect(config.allowedHosts).toEqual([
      'api.example.org',
      '.clinics.example.net',
      '10.0.0.8',
      '2001:db8::1',
    ]);
    expect(() =>
      loadConfig({ ...TEST_SECRETS, ALLOWED_HOSTS: 'ok.example.com, https://x.example.com, *' }),
    ).toThrow(ConfigError);
  });
});

describe('Host names and development tools', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    PUBLIC_URL: 'https://onramp.example.com',
    ALLOWED_HOSTS: 'api.example.org, .clinics.example.net',
  });
  const port = Number(new URL(t.url).port);

  /** A request to the app's port with any Host header (fetch refuses to set one). */
  const raw = (
    host: string,
    path: string,
    options: { method?: string; body?: string; headers?: Record<string, string> } = {},
  ) =>
    new Promise<RawResponse>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: options.method ?? 'GET',
          headers: { host, ...options.headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  const graphql = (host: string, query: string, headers: Record<string, string> = {}) =>
    raw(host, '/graphql', {
      method: 'POST',
      body: JSON.stringify({ query }),
      headers: { 'content-type': 'application/json', ...headers },
    });

  /** The status of a WebSocket upgrade with this Host (101 when it opened). */
  const upgrade = (host: string, origin?: string) =>
    new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws', {
        headers: { host, ...(origin ? { origin } : {}) },
      });
      socket.once('open', () => {
        socket.close();
        resolve(101);
      });
      socket.once('unexpected-response', (_req, res) => {
        resolve(res.statusCode ?? 0);
        socket.terminate();
      });
      socket.once('error', (error) => {
        if (socket.readyState !== WebSocket.CLOSED) reject(error);
      });
    });

  it('answers under localhost, loopback addresses, PUBLIC_URL and ALLOWED_HOSTS', async () => {
    for (const host of [
      `localhost:${port}`,
      'localhost',
      `console.localhost:${port}`,
      `127.0.0.1:${port}`,
      '127.0.0.2',
      `[::1]:${port}`,
      'onramp.example.com',
      'ONRAMP.example.com.:443',
      'api.example.org',
      'clinics.example.net',
      'lac.clinics.example.net',
    ]) {
      const response = await graphql(host, '{ health { status } }');
      expect({ host, status: response.status }).toEqual({ host, status: 200 });
      expect(await upgrade(host)).toBe(101);
    }
  });

  it('refuses every other name with 421, on every route but the probes, and on WebSocket', async () => {
    for (const host of [
      'rebind.attacker.example',
      `rebind.attacker.example:${port}`,
      'onramp.example.com.attacker.example',
      'localhost.attacker.example',
      'example.org',
      'xapi.example.org',
      '10.0.0.8',
      `[2001:db8::1]:${port}`,
      'bad host',
    ]) {
      expect({ host, status: (await graphql(host, '{ health { status } }')).status }).toEqual({
        host,
        status: 421,
      });
      expect({ host, status: await upgrade(host) }).toEqual({ host, status: 421 });
    }
    const refused = await raw('rebind.attacker.example', '/metrics');
    expect(refused.status).toBe(421);
    expect(JSON.parse(refused.body)).toMatchObject({ success: false, error: 'unknown_host' });
    expect(
      (await raw('rebind.attacker.example', '/api/v1/onboarding/start', { method: 'POST' })).status,
    ).toBe(421);
    expect((await raw('rebind.attacker.example', '/')).status).toBe(421);
    // Load balancers probe instances by address.
    expect((await raw('10.0.0.8', '/healthz')).status).toBe(200);
    expect((await raw('10.0.0.8', '/readyz')).status).toBe(200);
  });

  it('refuses a rebinding page whose Origin matches its own Host', async () => {
    const origin = 'http://rebind.attacker.example';
    const response = await graphql('rebind.attacker.example', '{ health { status } }', { origin });
    expect(response.status).toBe(421);
    expect(await upgrade('rebind.attacker.example', origin)).toBe(421);
  });

  const { admin: clinicAdmin } = await createClinic(t, { clinicName: 'Dev tools', country: 'FR' });
  const asClinicAdmin = { authorization: `Bearer ${await verifyAndSignIn(t, undefined, clinicAdmin)}` };
  const DEV_TOOLS = [
    ['devMailbox', '{ devMailbox(to: "admin@onramp.localhost") { subject text } }'],
    ['devSmsOutbox', '{ devSmsOutbox(to: "+33612345678") { text } }'],
    ['injectFault', 'mutation { injectFault(step: ssl) { __typename } }'],
  ] as const;

  it.each(DEV_TOOLS)('%s answers super-admins only, over HTTP and WebSocket', async (_name, operation) => {
    const code = async (headers: Record<string, string>) =>
      (await t.gql(operation, undefined, headers)).body.errors?.[0]?.extensions?.code;
    expect(await code({})).toBe('UNAUTHENTICATED');
    expect(await code(asClinicAdmin)).toBe('FORBIDDEN');
    expect(await code(await t.superAdmin())).toBeUndefined();

    const anonymous = await wsQuery(t.ws(), operation);
    expect(anonymous.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const admin = await wsQuery(t.ws({ connectionParams: await t.superAdmin() }), operation);
    expect(admin.errors).toBeUndefined();
  });

  it('no longer hands an anonymous caller the super-admin sign-in code', async () => {
    await t.gql('mutation { requestLoginCode(email: "admin@onramp.localhost") { __typename } }');
    await t.app.deps.auth.codes.idle();
    const peek = await t.gql<{ devMailbox: { text: string }[] }>(
      '{ devMailbox(to: "admin@onramp.localhost") { text } }',
    );
    expect(peek.body.data?.devMailbox).toBeUndefined();
    expect(JSON.stringify(peek.body)).not.toMatch(/\b\d{6}\b/);
    expect(peek.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
