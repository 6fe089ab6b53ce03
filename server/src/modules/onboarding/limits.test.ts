/**
 * The onboarding rate limits (README, "Onboarding service") at their default values where a test can reach them: provision once
 * per 24 h per uuid (an idempotent replay is free), and the per-address limit over every route,
 * here lowered to 7 an hour so the test stays short.
 */
import { describe, expect, it } from 'vitest';
import { restClient, startCapturingApp } from './helpers.test-support.js';

describe('rate limits', async () => {
  const t = await startCapturingApp({ ONBOARDING_IP_LIMIT: '7/1h' });
  const rest = restClient(t.url);
  const { key } = await t.app.deps.applications
    .register('Limits', { userId: null, ip: null })
    .then((issued) => ({ key: issued.masterKey }));

  it('provision: 1 per 24 h per uuid; neither a replay nor an attempt that failed on our side counts', async () => {
    // 1: start, 2: provision, 3: replay (free under the provision limit)
    const first = (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'a@example.com' } }))
      .body;
    expect(first.onboarding_status).toBe('pending');
    expect(
      (await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: first.uuid } })).status,
    ).toBe(200);
    const replay = await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: first.uuid } });
    expect(replay.status).toBe(200);
    expect(replay.body.metadata.is_idempotent).toBe(true);

    // 4: start, 5: provision fails at dns, 6: the retry (as the README advises) resumes and succeeds
    const second = (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'b@example.com' } }))
      .body;
    t.app.deps.provisioning.injectFault('dns', 1);
    expect(
      (await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: second.uuid } })).status,
    ).toBe(500);
    const retried = await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: second.uuid } });
    expect(retried.status).toBe(200);
    expect(retried.body.onboarding_status).toBe('activated');
    expect(retried.body.metadata).toMatchObject({ is_idempotent: false, provisioning_attempts: 2 });
    expect(retried.headers.get('x-ratelimit-remaining')).toBe('0');

    // The first uuid's budget is its own: it still answers (as a replay).
    expect(
      (await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: first.uuid } })).status,
    ).toBe(200);
  });

  it('50/h per address by default (7 here), over every route, before authentication', async () => {
    // Seven requests were made above; the eighth is refused whatever it is.
    const anonymous = await rest('GET', `/api/v1/onboarding/status/${crypto.randomUUID()}`);
    expect(anonymous.status).toBe(429);
    expect(Number(anonymous.headers.get('retry-after'))).toBeGreaterThan(3000);
    expect(anonymous.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(
      (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'c@example.com' } })).status,
    ).toBe(429);
    const GQL = 'mutation { startOnboarding(input: { email: "d@example.com" }) { __typename } }';
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'X-Master-Key': key },
      body: JSON.stringify({ query: GQL }),
    });
    const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
    expect(response.status).toBe(429);
    expect(body.errors[0]?.extensions.code).toBe('RATE_LIMITED');
  });

  it('is configurable and validated in env.ts', async () => {
    const { loadConfig } = await import('../../env.js');
    const config = loadConfig({
      ONRAMP_ENV: 'test',
      ONBOARDING_START_LIMIT: '3/30m',
      ONRAMP_DATA_DIR: t.config.dataDir,
    });
    expect(config.onboardingLimits.start).toEqual({ max: 3, windowSeconds: 1800 });
    expect(config.onboardingLimits.provision).toEqual({ max: 1, windowSeconds: 86_400 });
    expect(() =>
      loadConfig({ ONRAMP_ENV: 'test', ONBOARDING_IP_LIMIT: 'lots', ONRAMP_DATA_DIR: t.config.dataDir }),
    ).toThrow(/ONBOARDING_IP_LIMIT: must look like 10\/1h/);
  });
});
