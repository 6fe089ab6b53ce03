/**
 * An onboarding's API credentials sign the tenant's own requests: its status, nothing else;
 * timestamped, each signature once, rotatable and revocable by the application, audited.
 */
import { describe, expect, it } from 'vitest';
import { signRequest } from './api-credentials.js';
import { type RestResponse, restClient, startCapturingApp } from './helpers.test-support.js';

const t = await startCapturingApp({ ONBOARDING_IP_LIMIT: '100000/1h' });
const rest = restClient(t.url);
const { prisma } = t.app.deps.db;

async function provisioned() {
  const registered = await rest('POST', '/api/v1/applications/register', {
    headers: await t.superAdmin(),
    body: { app_name: `App ${Math.random().toString(36).slice(2, 8)}` },
  });
  const key = registered.body.master_key as string;
  const onboarding = async () => {
    const { uuid } = (
      await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'a@example.com' } })
    ).body;
    const done = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(done.status).toBe(200);
    return {
      uuid: uuid as string,
      apiKey: done.body.api_key as string,
      apiSecret: done.body.api_secret as string,
    };
  };
  return { key, onboarding };
}

function signed(
  credentials: { apiKey: string; apiSecret: string },
  method: 'GET' | 'POST',
  path: string,
  options: { timestamp?: number; body?: string; signPath?: string } = {},
) {
  const timestamp = String(options.timestamp ?? Math.floor(Date.now() / 1000));
  const body = options.body ?? '';
  const signature = signRequest(credentials.apiSecret, {
    method,
    path: options.signPath ?? path,
    timestamp,
    body,
  });
  return {
    headers: {
      'X-Api-Key': credentials.apiKey,
      'X-Onramp-Timestamp': timestamp,
      'X-Onramp-Signature': signature,
    },
    send: (): Promise<RestResponse> =>
      rest(method, path, {
        headers: {
          'X-Api-Key': credentials.apiKey,
          'X-Onramp-Timestamp': timestamp,
          'X-Onramp-Signature': signature,
        },
        ...(body ? { raw: body } : {}),
      }),
  };
}

describe('signed requests with api_key / api_secret', () => {
  it('read their own onboarding status; another onboarding of the same application is 404', async () => {
    const { onboarding } = await provisioned();
    const mine = await onboarding();
    const other = await onboarding();
    const status = await signed(mine, 'GET', `/api/v1/onboarding/status/${mine.uuid}`).send();
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ success: true, uuid: mine.uuid, onboarding_status: 'activated' });
    const foreign = await signed(mine, 'GET', `/api/v1/onboarding/status/${other.uuid}`).send();
    expect(foreign.status).toBe(404);
  });

  it('refuse a replay, an old or future timestamp, a changed path, a wrong secret, a missing header', async () => {
    const { onboarding } = await provisioned();
    const mine = await onboarding();
    const path = `/api/v1/onboarding/status/${mine.uuid}`;
    const once = signed(mine, 'GET', path);
    expect((await once.send()).status).toBe(200);
    const replay = await once.send();
    expect(replay.status).toBe(401);
    expect(replay.body).toEqual({
      success: false,
      error: 'invalid_signature',
      message: 'This signature was already used (replay)',
    });
    const now = Math.floor(Date.now() / 1000);
    for (const timestamp of [now - 301, now + 301]) {
      const answer = await signed(mine, 'GET', path, { timestamp }).send();
      expect(answer.status, String(timestamp - now)).toBe(401);
      expect(answer.body.message).toMatch(/more than 300 s/);
    }
    // Within the window, an earlier request is still fine (clock skew).
    expect((await signed(mine, 'GET', path, { timestamp: now - 200 }).send()).status).toBe(200);
    const moved = await signed(mine, 'GET', path, { signPath: `${path}?x=1` }).send();
    expect(moved.body.message).toBe('The signature does not match the request');
    const forged = await signed({ ...mine, apiSecret: `as_${'A'.repeat(43)}` }, 'GET', path).send();
    expect(forged.status).toBe(401);
    const { 'X-Onramp-Signature': _, ...unsigned } = signed(mine, 'GET', path).headers;
    expect((await rest('GET', path, { headers: unsigned })).status).toBe(401);
    const unknown = await signed({ ...mine, apiKey: `ak_${'0'.repeat(24)}` }, 'GET', path).send();
    expect(unknown.body.message).toBe('Invalid or revoked API key');
  });

  it('open nothing that takes the master key (403)', async () => {
    const { onboarding } = await provisioned();
    const mine = await onboarding();
    const body = JSON.stringify({ email: 'b@example.com' });
    const answer = await signed(mine, 'POST', '/api/v1/onboarding/start', { body }).send();
    expect(answer.status).toBe(403);
    expect(answer.body.error).toBe('forbidden');
    expect(await prisma.onboarding.count({ where: { email: 'b@example.com' } })).toBe(0);
  });

  it('rotate (the old pair stops at once) and revoke with the master key, both audited', async () => {
    const { key, onboarding } = await provisioned();
    const mine = await onboarding();
    const path = `/api/v1/onboarding/status/${mine.uuid}`;
    const rotated = await rest('POST', `/api/v1/onboarding/${mine.uuid}/api-key`, { key });
    expect(rotated.status).toBe(200);
    expect(rotated.body.api_key).toMatch(/^ak_[0-9a-f]{24}$/);
    const fresh = { apiKey: rotated.body.api_key as string, apiSecret: rotated.body.api_secret as string };
    expect((await signed(mine, 'GET', path).send()).status).toBe(401);
    expect((await signed(fresh, 'GET', path).send()).status).toBe(200);
    // The tenant cannot rotate its own credentials: that is the application's act.
    expect((await signed(fresh, 'POST', `/api/v1/onboarding/${mine.uuid}/api-key`).send()).status).toBe(403);
    const revoked = await rest('DELETE', `/api/v1/onboarding/${mine.uuid}/api-key`, { key });
    expect(revoked.body).toEqual({ success: true, uuid: mine.uuid, api_key_generated: false });
    expect((await signed(fresh, 'GET', path).send()).status).toBe(401);
    const actions = await prisma.auditLog.findMany({
      where: { targetId: mine.uuid },
    });
    expect(actions.map((entry) => entry.action)).toEqual(
      expect.arrayContaining(['onboarding.api_key_rotated', 'onboarding.api_key_revoked']),
    );
    // A pending onboarding has no credentials to rotate; another application's is not found.
    const { uuid: pending } = (
      await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'c@example.com' } })
    ).body;
    expect((await rest('POST', `/api/v1/onboarding/${pending}/api-key`, { key })).status).toBe(404);
    const stranger = await provisioned();
    expect(
      (await rest('POST', `/api/v1/onboarding/${mine.uuid}/api-key`, { key: stranger.key })).status,
    ).toBe(404);
    for (const secret of [mine.apiSecret, fresh.apiSecret]) {
      expect(t.logs()).not.toContain(secret);
      expect(JSON.stringify(actions.map((entry) => entry.data))).not.toContain(secret);
    }
  });
});
