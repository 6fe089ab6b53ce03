/**
 * An onboarding's API credentials sign the tenant's own requests: its status, nothing else;
 * timestamped, each signature once, rotatable and revocable by the application, audited.
 */
import { describe, expect, it } from 'vitest';
import { lockWaiters } from '../../../test/harness.js';
import { withClient } from '../../db/sql.js';
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
  const appId = registered.body.app_id as string;
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
  return { key, appId, onboarding };
}

/** A super-admin's GraphQL mutation on an application: its answer's __typename, and the new key. */
async function applicationMutation(name: 'rotateApplicationKey' | 'revokeApplicationKey', id: string) {
  const response = await fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await t.superAdmin()) },
    body: JSON.stringify({
      query: `mutation ($id: ID!) { ${name}(applicationId: $id) { __typename ${name === 'rotateApplicationKey' ? '... on ApplicationKeyIssued { masterKey }' : ''} } }`,
      variables: { id },
    }),
  });
  const body = (await response.json()) as {
    data?: Record<string, { __typename: string; masterKey?: string }>;
    errors?: unknown;
  };
  if (!body.data) throw new Error(JSON.stringify(body.errors));
  return body.data[name] as { __typename: string; masterKey?: string };
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

  it('keep used signatures until the reconcile pass forgets the expired ones; a request deletes none', async () => {
    const { onboarding } = await provisioned();
    const mine = await onboarding();
    const expired = `expired-${Math.random().toString(36).slice(2)}`;
    await prisma.$executeRaw`
      INSERT INTO api_request_signatures (signature, expires_at) VALUES (${expired}, now() - interval '1 minute')`;
    const kept = () =>
      prisma.$queryRaw<{ n: number }[]>`
        SELECT count(*)::int AS n FROM api_request_signatures WHERE signature = ${expired}`.then(
        ([row]) => row?.n,
      );
    expect((await signed(mine, 'GET', `/api/v1/onboarding/status/${mine.uuid}`).send()).status).toBe(200);
    expect(await kept()).toBe(1);
    expect(await t.app.deps.onboarding.credentials.prune()).toBeGreaterThanOrEqual(1);
    expect(await kept()).toBe(0);
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
    // 310, not 301: a loaded machine can take seconds between `now` and the server's reading.
    for (const timestamp of [now - 310, now + 310]) {
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

  // docs/decisions/087: a revoked application is cut off, its tenants' credentials with it.
  it("stop with the application's revoked master key, and stay stopped after it is reissued; a rotation keeps them", async () => {
    const { key, appId, onboarding } = await provisioned();
    const first = await onboarding();
    const second = await onboarding();
    // Each check its own timestamp: a signature is accepted once, and two in one second would match.
    let checks = 0;
    const status = (credentials: { uuid: string; apiKey: string; apiSecret: string }) => {
      checks += 1;
      const timestamp = Math.floor(Date.now() / 1000) - checks;
      return signed(credentials, 'GET', `/api/v1/onboarding/status/${credentials.uuid}`, { timestamp })
        .send()
        .then((answer) => answer.status);
    };
    // A rotation replaces a key the application still holds: its tenants go on.
    const rotated = await applicationMutation('rotateApplicationKey', appId);
    expect(rotated.__typename).toBe('ApplicationKeyIssued');
    expect([await status(first), await status(second)]).toEqual([200, 200]);
    expect((await rest('GET', `/api/v1/onboarding/status/${first.uuid}`, { key })).status).toBe(401);

    expect((await applicationMutation('revokeApplicationKey', appId)).__typename).toBe(
      'ApplicationKeyRevoked',
    );
    expect([await status(first), await status(second)]).toEqual([401, 401]);
    const audit = await prisma.auditLog.findFirstOrThrow({
      where: { action: 'application.key_revoked', targetId: appId },
    });
    expect(audit.data).toEqual({ revokedKeys: 1, revokedApiCredentials: 2, deletedWebhookEndpoints: 0 });
    // A new master key does not bring them back: the application issues new ones.
    const reissued = (await applicationMutation('rotateApplicationKey', appId)).masterKey as string;
    expect([await status(first), await status(second)]).toEqual([401, 401]);
    const fresh = await rest('POST', `/api/v1/onboarding/${first.uuid}/api-key`, { key: reissued });
    expect(fresh.status).toBe(200);
    expect(
      await status({
        uuid: first.uuid,
        apiKey: fresh.body.api_key as string,
        apiSecret: fresh.body.api_secret as string,
      }),
    ).toBe(200);
  });

  it('issue nothing that outlives a revocation committed while a rotation was asked for', async () => {
    const { key, appId, onboarding } = await provisioned();
    const mine = await onboarding();
    const waiting = () => lockWaiters(t.config.databaseUrl as string);
    const rotation = await withClient(t.config.databaseUrl as string, async (client) => {
      // The onboarding's row held: the revocation waits with its keys revoked, not committed.
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM onboardings WHERE id = $1 FOR UPDATE', [mine.uuid]);
      const revocation = applicationMutation('revokeApplicationKey', appId);
      await expect.poll(waiting).toBe(1);
      // The rotation's key still reads live (nothing committed), so it gets past authentication.
      const rotated = rest('POST', `/api/v1/onboarding/${mine.uuid}/api-key`, { key });
      // (A last-used stamp of the key may wait on the revocation too.)
      await expect.poll(waiting).toBeGreaterThanOrEqual(2);
      await client.query('COMMIT');
      expect((await revocation).__typename).toBe('ApplicationKeyRevoked');
      return rotated;
    });
    expect(rotation.status).toBe(404);
    expect(await prisma.onboarding.findUniqueOrThrow({ where: { id: mine.uuid } })).toMatchObject({
      apiKeyId: null,
      apiSecretEncrypted: null,
    });
  });
});
