/**
 * /metrics in production answers only with `Authorization: Bearer <METRICS_TOKEN>`; without a
 * configured token it is closed there. Outside production it stays open unless a token is set.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp, testConfig } from '../test/harness.js';
import { ConfigError } from './env.js';

const TOKEN = 'metrics-token-0123456789abcdef';
const PRODUCTION = {
  ONRAMP_ENV: 'production',
  SMTP_URL: 'smtp://127.0.0.1:2525',
  SMS_GATEWAY_URL: 'http://127.0.0.1:9/sms',
  CLINIC_POOL_SIZE: '0',
  CLINIC_HEALTH_INTERVAL_SECONDS: '0',
};

const scrape = async (url: string, authorization?: string) => {
  const response = await fetch(`${url}/metrics`, {
    headers: authorization ? { authorization } : {},
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
};

describe('production with METRICS_TOKEN', async () => {
  const t = await startTestApp({ ...PRODUCTION, METRICS_TOKEN: TOKEN });

  it('refuses a scrape without the token, or with another one, as 401 without any metric', async () => {
    for (const authorization of [
      undefined,
      'Bearer wrong-token',
      `Bearer ${TOKEN}x`,
      TOKEN,
      `Basic ${TOKEN}`,
    ]) {
      const answer = await scrape(t.url, authorization);
      expect(answer.status, String(authorization)).toBe(401);
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(answer.text).not.toContain('onramp_');
    }
  });

  it('serves the metrics to the bearer of the token', async () => {
    const answer = await scrape(t.url, `Bearer ${TOKEN}`);
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('onramp_process_resident_memory_bytes');
  });
});

describe('production without METRICS_TOKEN', async () => {
  const t = await startTestApp(PRODUCTION);

  it('keeps /metrics closed', async () => {
    const answer = await scrape(t.url);
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain('onramp_');
    expect(JSON.parse(answer.text)).toMatchObject({ error: 'unauthenticated' });
  });
});

describe('development', async () => {
  const t = await startTestApp({
    METRICS_TOKEN: TOKEN,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });

  it('requires the token once one is configured', async () => {
    expect((await scrape(t.url)).status).toBe(401);
    expect((await scrape(t.url, `Bearer ${TOKEN}`)).status).toBe(200);
  });

  it('refuses a token shorter than 16 characters at start', () => {
    expect(() => testConfig({ METRICS_TOKEN: 'short' })).toThrow(ConfigError);
  });
});
