/**
 * The onboarding REST API (README, "Onboarding service"), followed word for word over HTTP: register an application, start,
 * provision (with and without an API key), status, complete, the idempotent replay, and every
 * error of its FAQ; Idempotency-Key; isolation between applications; secrets never logged.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { describe, expect, it } from 'vitest';
import { afterFile } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { gql, type RestResponse, restClient, startCapturingApp } from './helpers.test-support.js';
import { openApiDocument } from './openapi.js';
import { ONBOARDING_ROUTES } from './routes.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

const t = await startCapturingApp({
  ONBOARDING_IP_LIMIT: '100000/1h',
  // Resuming a failed provisioning needs a second attempt within the day (default 1/24h,
  // exercised in limits.test.ts).
  ONBOARDING_PROVISION_LIMIT: '5/24h',
  BASE_DOMAIN: 'akasigroup.local',
});
const rest = restClient(t.url);
const { prisma } = t.app.deps.db;
/** Every secret handed out in this file, to look for in logs and later answers. */
const secrets: string[] = [];

async function registerApp(name = `SIH ${Math.random().toString(36).slice(2, 8)}`) {
  const response = await rest('POST', '/api/v1/applications/register', {
    headers: await t.superAdmin(),
    body: { app_name: name },
  });
  expect(response.status).toBe(201);
  secrets.push(response.body.master_key);
  return { id: response.body.app_id as string, key: response.body.master_key as string };
}

async function start(key: string, body: unknown = { email: 'admin@example.com' }): Promise<RestResponse> {
  return rest('POST', '/api/v1/onboarding/start', { key, body });
}

describe('the integration guide, verbatim', () => {
  it('3.1 registers an application: app_id, app_name and a master key shown once', async () => {
    const response = await rest('POST', '/api/v1/applications/register', {
      headers: await t.superAdmin(),
      body: { app_name: 'SIH Clinique' },
    });
    expect(response.status).toBe(201);
    expect(response.body).toMatchObject({
      success: true,
      app_id: expect.stringMatching(UUID),
      app_name: 'SIH Clinique',
    });
    expect(response.body.master_key).toMatch(/^mk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    secrets.push(response.body.master_key);
    const keys = await prisma.applicationKey.findMany({ where: { applicationId: response.body.app_id } });
    expect(keys).toHaveLength(1);
    expect(keys[0]?.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(keys)).not.toContain(response.body.master_key.slice(20));
  });

  it('3.2 → 3.7: start, provision with an API key, the replay, status, complete', async () => {
    const { id: appId, key } = await registerApp();

    // 3.2
    const started = await rest('POST', '/api/v1/onboarding/start', {
      key,
      body: { email: 'admin@example.com', organization_name: 'Clinique du Lac' },
    });
    expect(started.status).toBe(201);
    expect(started.body).toEqual({
      success: true,
      uuid: expect.stringMatching(UUID),
      subdomain: 'clinique-du-lac',
      full_domain: 'clinique-du-lac.akasigroup.local',
      url: 'https://clinique-du-lac.akasigroup.local',
      email: 'admin@example.com',
      organization_name: 'Clinique du Lac',
      onboarding_status: 'pending',
    });
    expect(Number(started.headers.get('x-ratelimit-remaining'))).toBe(9); // 10/h per application
    const uuid = started.body.uuid as string;

    // 3.4
    const provisioned = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(provisioned.status).toBe(200);
    expect(provisioned.body).toMatchObject({
      success: true,
      uuid,
      subdomain: 'clinique-du-lac',
      email: 'admin@example.com',
      organization_name: 'Clinique du Lac',
      onboarding_status: 'activated',
      api_key: expect.stringMatching(/^ak_[0-9a-f]{24}$/),
      api_secret: expect.stringMatching(/^as_[A-Za-z0-9_-]{43}$/),
      metadata: {
        created_at: expect.stringMatching(ISO),
        updated_at: expect.stringMatching(ISO),
        dns_configured: true,
        ssl_configured: true,
        infrastructure_status: 'ready',
        api_key_generated: true,
        provisioning_attempts: 1,
        is_idempotent: false,
      },
    });
    const { api_key: apiKey, api_secret: apiSecret } = provisioned.body;
    secrets.push(apiKey, apiSecret);
    // Stored hashed only.
    const row = await prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } });
    expect(row.apiKeyHash).toMatch(/^[0-9a-f]{64}$/);
    // The secret signs requests, so it is kept encrypted (AES-GCM), never in clear.
    expect(row.apiSecretEncrypted).toMatch(/^v1\./);
    expect(JSON.stringify(row)).not.toContain(apiSecret);
    expect(JSON.stringify(row)).not.toContain(apiKey);
    // DNS and the certificate went through the providers.
    expect(
      await prisma.dnsRecord.count({ where: { name: 'clinique-du-lac.akasigroup.local' } }),
    ).toBeGreaterThan(0);
    const certificate = await prisma.certificate.findFirst({
      where: { fqdn: 'clinique-du-lac.akasigroup.local' },
    });
    expect(certificate).not.toBeNull();

    // Note of 3.4: already provisioned → is_idempotent true, api_key/api_secret null; nothing re-issued.
    const again = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ onboarding_status: 'activated', api_key: null, api_secret: null });
    expect(again.body.metadata).toMatchObject({
      is_idempotent: true,
      provisioning_attempts: 1,
      api_key_generated: true,
    });
    expect(JSON.stringify(again.body)).not.toContain(apiSecret);
    const rowAfter = await prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } });
    expect(rowAfter.apiSecretEncrypted).toBe(row.apiSecretEncrypted);
    expect(await prisma.certificate.count({ where: { fqdn: 'clinique-du-lac.akasigroup.local' } })).toBe(1);

    // 3.6 / section 6: status
    const status = await rest('GET', `/api/v1/onboarding/status/${uuid}`, { key });
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({
      success: true,
      uuid,
      subdomain: 'clinique-du-lac',
      onboarding_status: 'activated',
      metadata: { dns_configured: true, ssl_configured: true, infrastructure_status: 'ready' },
    });
    expect(status.headers.get('x-ratelimit-remaining')).toBe('99'); // 100/h per application
    expect(JSON.stringify(status.body)).not.toContain(apiSecret);

    // 3.7
    // The documented message is French; an integrator asking for French gets its wording.
    const completed = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
      key,
      headers: { 'Accept-Language': 'fr' },
      body: { tenant_id: 'tenant_123', metadata: { users_count: 1, database_created: true } },
    });
    expect(completed.status).toBe(200);
    expect(completed.headers.get('content-language')).toBe('fr');
    expect(completed.body).toEqual({
      success: true,
      message: 'Onboarding marqué comme complété avec succès',
      uuid,
      onboarding_status: 'completed',
      tenant_id: 'tenant_123',
      completed_at: expect.stringMatching(ISO),
    });
    const after = await rest('GET', `/api/v1/onboarding/status/${uuid}`, { key });
    expect(after.body).toMatchObject({ onboarding_status: 'completed', tenant_id: 'tenant_123' });
    // Completing again with the same tenant answers the same; another tenant is a conflict.
    const repeat = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
      key,
      body: { tenant_id: 'tenant_123' },
    });
    expect(repeat.body.completed_at).toBe(completed.body.completed_at);
    expect(
      (await rest('POST', `/api/v1/onboarding/${uuid}/complete`, { key, body: { tenant_id: 'tenant_999' } }))
        .status,
    ).toBe(409);
    // Provision after completion is still a harmless replay.
    const late = await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid } });
    expect(late.body).toMatchObject({
      onboarding_status: 'completed',
      api_key: null,
      metadata: { is_idempotent: true },
    });

    // Audit: every step, never a secret.
    const audit = await prisma.auditLog.findMany({
      where: { OR: [{ targetId: uuid }, { targetId: appId }] },
      orderBy: { id: 'asc' },
    });
    expect(audit.map((entry) => entry.action)).toEqual([
      'application.registered',
      'onboarding.started',
      'onboarding.provisioned',
      'onboarding.completed',
    ]);
    const auditText = JSON.stringify(audit, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    for (const secret of secrets) expect(auditText).not.toContain(secret);
  });

  it('3.4 without generate_api_key: no credentials, then none on a replay either', async () => {
    const { key } = await registerApp();
    const { uuid } = (await start(key, { email: 'ops@example.org', organization_name: 'Zürich Zahnarzt' }))
      .body;
    const provisioned = await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid } });
    expect(provisioned.status).toBe(200);
    expect(provisioned.body).toMatchObject({
      subdomain: 'zurich-zahnarzt',
      onboarding_status: 'activated',
      api_key: null,
      api_secret: null,
      metadata: { api_key_generated: false, is_idempotent: false, infrastructure_status: 'ready' },
    });
    const replay = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(replay.body).toMatchObject({
      api_key: null,
      metadata: { is_idempotent: true, api_key_generated: false },
    });
  });

  it('generates the organisation name and a readable subdomain when organization_name is absent', async () => {
    const { key } = await registerApp();
    const response = await start(key, { email: 'Someone@Example.COM ' });
    expect(response.status).toBe(201);
    expect(response.body.email).toBe('someone@example.com');
    expect(response.body.subdomain).toMatch(/^[a-z]+-[a-z]+-\d{4}$/);
    expect(response.body.organization_name).toMatch(/^[A-Z][a-z]+ [A-Z][a-z]+ \d{4}$/);
  });

  it('section 4, "Rejeu": start again creates a new onboarding, with another subdomain', async () => {
    const { key } = await registerApp();
    const body = { email: 'admin@example.com', organization_name: 'Cabinet Rejeu' };
    const first = await start(key, body);
    const second = await start(key, body);
    expect(second.body.uuid).not.toBe(first.body.uuid);
    expect([first.body.subdomain, second.body.subdomain]).toEqual(['cabinet-rejeu', 'cabinet-rejeu-2']);
  });
});

describe('FAQ "Comment gérer les erreurs ?"', () => {
  it('400: malformed JSON, a body that is not an object, not JSON at all', async () => {
    const { key } = await registerApp();
    const broken = await rest('POST', '/api/v1/onboarding/start', { key, raw: '{"email": ' });
    expect(broken.status).toBe(400);
    expect(broken.body).toEqual({
      success: false,
      error: 'invalid_json',
      message: 'The body is not valid JSON',
    });
    expect((await rest('POST', '/api/v1/onboarding/start', { key, raw: '["a"]' })).status).toBe(400);
    const form = await rest('POST', '/api/v1/onboarding/start', {
      key,
      raw: 'email=a@b.c',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    });
    expect(form.status).toBe(400);
    expect((await rest('GET', '/api/v1/onboarding/status/not-a-uuid', { key })).status).toBe(400);
  });

  it('422: every invalid field at once, snake_case names', async () => {
    const { key } = await registerApp();
    const response = await start(key, { email: 'not-an-email', organization_name: 'x'.repeat(121) });
    expect(response.status).toBe(422);
    expect(response.body).toMatchObject({ success: false, error: 'validation_failed' });
    expect(response.body.errors.map((error: { field: string }) => error.field)).toEqual([
      'email',
      'organization_name',
    ]);
    expect((await start(key, {})).body.errors).toEqual([
      { field: 'email', message: 'The e-mail address is required' },
    ]);
    const provision = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid: '42', generate_api_key: 'yes' },
    });
    expect(provision.status).toBe(422);
    expect(provision.body.errors[0].field).toBe('uuid');
    const { uuid } = (await start(key)).body;
    const complete = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
      key,
      body: { metadata: [1] },
    });
    expect(complete.status).toBe(422);
    expect(complete.body.errors.map((error: { field: string }) => error.field)).toEqual([
      'tenant_id',
      'metadata',
    ]);
    // Nothing was created by the refused start.
    expect(await prisma.onboarding.count({ where: { email: 'not-an-email' } })).toBe(0);
  });

  it('401: missing, malformed, unknown, rotated and revoked master keys', async () => {
    const { id, key } = await registerApp();
    const missing = await start(undefined as unknown as string);
    expect(missing.status).toBe(401);
    expect(missing.body).toMatchObject({ success: false, error: 'unauthenticated' });
    expect((await start('mk_nope')).status).toBe(401);
    // Right key id, wrong secret: refused (compared in constant time on the hash).
    const forged = `${key.slice(0, 20)}${'A'.repeat(43)}`;
    expect((await start(forged)).status).toBe(401);
    expect((await rest('GET', `/api/v1/onboarding/status/${crypto.randomUUID()}`, {})).status).toBe(401);

    const ROTATE =
      'mutation ($id: ID!) { rotateApplicationKey(applicationId: $id) { ... on ApplicationKeyIssued { masterKey } } }';
    const rotated = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await t.superAdmin()) },
      body: JSON.stringify({ query: ROTATE, variables: { id } }),
    }).then(
      (response) => response.json() as Promise<{ data: { rotateApplicationKey: { masterKey: string } } }>,
    );
    const newKey = rotated.data.rotateApplicationKey.masterKey;
    secrets.push(newKey);
    expect((await start(key)).status).toBe(401);
    expect((await start(newKey)).status).toBe(201);

    const REVOKE =
      'mutation ($id: ID!) { revokeApplicationKey(applicationId: $id) { ... on ApplicationKeyRevoked { application { hasActiveKey } } } }';
    await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await t.superAdmin()) },
      body: JSON.stringify({ query: REVOKE, variables: { id } }),
    });
    const revoked = await start(newKey);
    expect(revoked.status).toBe(401);
    expect(revoked.body.message).toBe('Invalid or revoked master key');
  });

  it('401/403 on /applications/register: no token, then a token that is not a super-admin', async () => {
    const none = await rest('POST', '/api/v1/applications/register', { body: { app_name: 'X' } });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    // A master key does not register applications either.
    const { key } = await registerApp();
    expect(
      (await rest('POST', '/api/v1/applications/register', { key, body: { app_name: 'X' } })).status,
    ).toBe(401);
    const user = await prisma.user.create({
      data: { email: `client-${Date.now()}@example.com`, firstName: 'C', lastName: 'L', role: 'CLIENT' },
    });
    const session = await t.app.deps.auth.startSession(user.id, { ip: '127.0.0.1' }, 'test');
    const forbidden = await rest('POST', '/api/v1/applications/register', {
      headers: { authorization: `Bearer ${session.accessToken}` },
      body: { app_name: 'X' },
    });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toMatchObject({ success: false, error: 'forbidden' });
    const invalid = await rest('POST', '/api/v1/applications/register', {
      headers: await t.superAdmin(),
      body: { app_name: ' ' },
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body.errors[0].field).toBe('app_name');
  });

  it('404: an unknown uuid, and another application’s uuid (never 403)', async () => {
    const mine = await registerApp();
    const theirs = await registerApp();
    const { uuid } = (await start(mine.key, { email: 'a@example.com', organization_name: 'Mine' })).body;
    const unknown = crypto.randomUUID();
    for (const [id, key] of [
      [unknown, mine.key],
      [uuid, theirs.key],
    ] as const) {
      const status = await rest('GET', `/api/v1/onboarding/status/${id}`, { key });
      expect(status.status).toBe(404);
      expect(status.body).toEqual({
        success: false,
        error: 'not_found',
        message: 'No onboarding with this uuid for this application',
      });
      expect((await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid: id } })).status).toBe(
        404,
      );
      expect(
        (await rest('POST', `/api/v1/onboarding/${id}/complete`, { key, body: { tenant_id: 't' } })).status,
      ).toBe(404);
    }
    // Their attempts changed nothing.
    expect((await prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } })).status).toBe('pending');
  });

  it('409: complete before provision', async () => {
    const { key } = await registerApp();
    const { uuid } = (await start(key)).body;
    const response = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
      key,
      body: { tenant_id: 't1' },
    });
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ success: false, error: 'conflict' });
  });

  it('429: /start beyond 10 an hour for one application, with Retry-After and X-RateLimit-Remaining', async () => {
    const { key } = await registerApp();
    const other = await registerApp();
    for (let i = 0; i < 10; i += 1) expect((await start(key)).status).toBe(201);
    const refused = await start(key);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(3500);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(refused.body).toMatchObject({ success: false, error: 'rate_limited', retry_after: retryAfter });
    // Per application: another one is not affected.
    expect((await start(other.key)).status).toBe(201);
  });

  it('429: /status beyond 100 an hour for one application', async () => {
    const { key } = await registerApp();
    const { uuid } = (await start(key)).body;
    const answers = [];
    for (let i = 0; i < 101; i += 1)
      answers.push(await rest('GET', `/api/v1/onboarding/status/${uuid}`, { key }));
    expect(answers.slice(0, 100).every((answer) => answer.status === 200)).toBe(true);
    expect(answers[99]?.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(answers[100]?.status).toBe(429);
    expect(Number(answers[100]?.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('500 then resume: DNS done, the certificate fails; the next call continues from ssl', async () => {
    const { key } = await registerApp();
    const { uuid, subdomain } = (
      await start(key, { email: 'a@example.com', organization_name: 'Reprise Partielle' })
    ).body;
    t.app.deps.provisioning.injectFault('ssl', 1);
    const failed = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(failed.status).toBe(500);
    expect(failed.body).toMatchObject({
      success: false,
      error: 'provisioning_failed',
      step: 'ssl',
      onboarding_status: 'pending',
      metadata: {
        dns_configured: true,
        ssl_configured: false,
        infrastructure_status: 'partial',
        provisioning_attempts: 1,
      },
    });
    expect(JSON.stringify(failed.body)).not.toMatch(/"(ak|as)_/);
    // The DNS record was kept, not rolled back.
    const fqdn = `${subdomain}.akasigroup.local`;
    expect(await prisma.dnsRecord.count({ where: { name: fqdn } })).toBeGreaterThan(0);

    const resumed = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid, generate_api_key: true },
    });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({
      onboarding_status: 'activated',
      api_key: expect.stringMatching(/^ak_/),
      metadata: { infrastructure_status: 'ready', provisioning_attempts: 2, is_idempotent: false },
    });
    secrets.push(resumed.body.api_key, resumed.body.api_secret);
    // The second run skipped dns and ran ssl (recorded like every provisioning run), each run
    // of the onboarding as its subject, none pretending to be a clinic's.
    expect(await prisma.provisioningRun.count({ where: { clinicId: uuid } })).toBe(0);
    const runs = await prisma.provisioningRun.findMany({
      where: { subjectKind: 'ONBOARDING', onboardingId: uuid },
      orderBy: { startedAt: 'asc' },
      include: { steps: true },
    });
    expect(runs.map((run) => [run.kind, run.status])).toEqual([
      ['ONBOARDING', 'FAILED'],
      ['ONBOARDING', 'SUCCEEDED'],
    ]);
    const second = Object.fromEntries((runs[1]?.steps ?? []).map((step) => [step.name, step.status]));
    expect(second).toEqual({ dns: 'SKIPPED', ssl: 'SUCCEEDED', commit: 'SUCCEEDED' });
  });
});

describe('Idempotency-Key (IETF draft)', () => {
  it('same key and body: the stored response, replayed, without the secrets', async () => {
    const { key } = await registerApp();
    const headers = { 'Idempotency-Key': 'start-001' };
    const body = { email: 'idem@example.com', organization_name: 'Idempotent Clinic' };
    const first = await rest('POST', '/api/v1/onboarding/start', { key, body, headers });
    expect(first.status).toBe(201);
    // Same body, keys in another order: same request.
    const replay = await rest('POST', '/api/v1/onboarding/start', {
      key,
      body: { organization_name: 'Idempotent Clinic', email: 'idem@example.com' },
      headers,
    });
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual(first.body);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await prisma.onboarding.count({ where: { email: 'idem@example.com' } })).toBe(1);

    const provisionHeaders = { 'Idempotency-Key': '"provision-001"' };
    const provisionBody = { uuid: first.body.uuid, generate_api_key: true };
    const provisioned = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: provisionBody,
      headers: provisionHeaders,
    });
    expect(provisioned.body.api_secret).toMatch(/^as_/);
    secrets.push(provisioned.body.api_key, provisioned.body.api_secret);
    const replayed = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: provisionBody,
      headers: provisionHeaders,
    });
    expect(replayed.status).toBe(200);
    expect(replayed.body).toEqual({ ...provisioned.body, api_key: null, api_secret: null });
    const stored = await prisma.idempotencyKey.findMany();
    const storedText = JSON.stringify(stored);
    for (const secret of secrets) expect(storedText).not.toContain(secret);
  });

  it('same key, another body: 422; other applications have their own keys', async () => {
    const { key } = await registerApp();
    const other = await registerApp();
    const headers = { 'Idempotency-Key': 'shared-key' };
    expect(
      (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'a@example.com' }, headers }))
        .status,
    ).toBe(201);
    const reused = await rest('POST', '/api/v1/onboarding/start', {
      key,
      body: { email: 'b@example.com' },
      headers,
    });
    expect(reused.status).toBe(422);
    expect(reused.body).toMatchObject({ success: false, error: 'idempotency_key_reused' });
    // The same key string from another application is a different key.
    const theirs = await rest('POST', '/api/v1/onboarding/start', {
      key: other.key,
      body: { email: 'b@example.com' },
      headers,
    });
    expect(theirs.status).toBe(201);
    expect(theirs.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a refused request is replayed as refused; a 5xx is not stored, so a retry runs again', async () => {
    const { key } = await registerApp();
    const headers = { 'Idempotency-Key': 'bad-body' };
    expect(
      (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'x' }, headers })).status,
    ).toBe(422);
    const again = await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'x' }, headers });
    expect(again.status).toBe(422);
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    const { uuid } = (await start(key)).body;
    t.app.deps.provisioning.injectFault('dns', 1);
    const retryHeaders = { 'Idempotency-Key': 'retry-after-500' };
    const failed = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid },
      headers: retryHeaders,
    });
    expect(failed.status).toBe(500);
    expect(failed.body.metadata).toMatchObject({ infrastructure_status: 'failed', dns_configured: false });
    const retried = await rest('POST', '/api/v1/onboarding/provision', {
      key,
      body: { uuid },
      headers: retryHeaders,
    });
    expect(retried.status).toBe(200);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a 429 is not stored either: once the window is over, a retry with the same key runs', async () => {
    const { id, key } = await registerApp();
    for (let i = 0; i < 10; i++) expect((await start(key, { email: `w${i}@example.com` })).status).toBe(201);
    const headers = { 'Idempotency-Key': 'after-429' };
    const body = { email: 'late@example.com' };
    const limited = await rest('POST', '/api/v1/onboarding/start', { key, body, headers });
    expect(limited.status).toBe(429);
    // The window ends (as an hour passing would end it).
    await prisma.$executeRaw`
      UPDATE request_counters SET window_started_at = now() - interval '2 hours' WHERE key = ${id}`;
    const retried = await rest('POST', '/api/v1/onboarding/start', { key, body, headers });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(retried.body).toMatchObject({ success: true, email: 'late@example.com' });
    // And that answer is the one kept from now on.
    const replayed = await rest('POST', '/api/v1/onboarding/start', { key, body, headers });
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.body.uuid).toBe(retried.body.uuid);
  });

  it('on /applications/register too: the replay does not show the master key again', async () => {
    const headers = { ...(await t.superAdmin()), 'Idempotency-Key': 'register-once' };
    const first = await rest('POST', '/api/v1/applications/register', {
      headers,
      body: { app_name: 'Once' },
    });
    expect(first.status).toBe(201);
    secrets.push(first.body.master_key);
    const replay = await rest('POST', '/api/v1/applications/register', {
      headers,
      body: { app_name: 'Once' },
    });
    expect(replay.status).toBe(201);
    expect(replay.body).toEqual({ ...first.body, master_key: null });
    expect(await prisma.application.count({ where: { name: 'Once' } })).toBe(1);
  });

  it('400 for an unusable Idempotency-Key', async () => {
    const { key } = await registerApp();
    const response = await rest('POST', '/api/v1/onboarding/start', {
      key,
      body: { email: 'a@example.com' },
      headers: { 'Idempotency-Key': 'x'.repeat(256) },
    });
    expect(response.status).toBe(400);
    expect(response.body.error).toBe('invalid_idempotency_key');
  });
});

describe('Idempotency-Key while the first request still runs', async () => {
  // The DNS provider is Cloudflare's API, faked (third-party HTTP): it holds the first request it
  // gets until told to answer, which keeps a provisioning inside its DNS step.
  const cloudflare = await heldCloudflare();
  const held = await startCapturingApp({
    ONBOARDING_IP_LIMIT: '100000/1h',
    ONBOARDING_PROVISION_LIMIT: '5/24h', // the refusals below must come from the key, not the limit
    DNS_PROVIDER: 'cloudflare',
    CLOUDFLARE_API_URL: cloudflare.url,
    CLOUDFLARE_API_TOKEN: 'cf-test-token',
    CLOUDFLARE_ZONE_ID: 'zone-1',
  });
  const heldRest = restClient(held.url);

  it('same key while the first request still runs: 409', async () => {
    const registered = await heldRest('POST', '/api/v1/applications/register', {
      headers: await held.superAdmin(),
      body: { app_name: 'Held' },
    });
    const key = registered.body.master_key as string;
    secrets.push(key);
    const { uuid } = (
      await heldRest('POST', '/api/v1/onboarding/start', { key, body: { email: 'h@example.com' } })
    ).body;
    const headers = { 'Idempotency-Key': 'slow-one' };
    cloudflare.hold();
    const first = heldRest('POST', '/api/v1/onboarding/provision', { key, body: { uuid }, headers });
    try {
      await cloudflare.entered;
      const second = await heldRest('POST', '/api/v1/onboarding/provision', { key, body: { uuid }, headers });
      expect(second.status).toBe(409);
      expect(second.body).toMatchObject({ success: false, error: 'idempotency_key_in_use' });
      // Without the key, a second provisioning of the same onboarding is refused as well.
      const parallel = await heldRest('POST', '/api/v1/onboarding/provision', { key, body: { uuid } });
      expect(parallel.status).toBe(409);
      expect(parallel.body).toMatchObject({ success: false, error: 'conflict' });
    } finally {
      cloudflare.release();
    }
    expect((await first).status).toBe(200);
    const third = await heldRest('POST', '/api/v1/onboarding/provision', { key, body: { uuid }, headers });
    expect(third.status).toBe(200);
    expect(third.headers.get('idempotent-replayed')).toBe('true');
  });
});

/** The little of Cloudflare's records API that publishing uses; `hold()` parks the next request. */
async function heldCloudflare() {
  let holding = false;
  let parked: (() => void)[] = [];
  let entered: () => void = () => {};
  const state = { entered: Promise.resolve() };
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (holding) {
      holding = false;
      entered();
      await new Promise<void>((resolve) => parked.push(resolve));
    }
    const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
    const result = req.method === 'GET' ? [] : { id: randomUUID().replaceAll('-', ''), ...body };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ success: true, errors: [], messages: [], result }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterFile(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/client/v4`,
    get entered() {
      return state.entered;
    },
    hold() {
      holding = true;
      state.entered = new Promise<void>((resolve) => {
        entered = resolve;
      });
    },
    release() {
      for (const resume of parked) resume();
      parked = [];
    },
  };
}

describe('subdomains shared with clinic registration', () => {
  it('8 concurrent starts with one name get 8 distinct subdomains', async () => {
    const { key } = await registerApp();
    const answers = await Promise.all(
      Array.from({ length: 8 }, () =>
        start(key, { email: 'race@example.com', organization_name: 'Clinique Concurrente' }),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(8).fill(201));
    const names = answers.map((answer) => answer.body.subdomain as string).sort();
    expect(new Set(names).size).toBe(8);
    expect(names).toContain('clinique-concurrente');
    for (const name of names) expect(name).toMatch(/^clinique-concurrente(-[2-8])?$/);
  });

  it('a clinic and an onboarding never share a name; reserved names are skipped', async () => {
    const REGISTER = `mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) {
      __typename ... on RegisterClinicSuccess { clinic { subdomain } } } }`;
    const registered = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        query: REGISTER,
        variables: {
          input: {
            clinicName: 'Clinique Partagée',
            country: 'FR',
            adminEmail: `partage-${Date.now()}@example.com`,
            adminPassword: 'a sturdy passphrase 42',
            adminFirstName: 'Ada',
            adminLastName: 'Lovelace',
            acceptedDocuments: CURRENT_ACCEPTANCES,
          },
        },
      }),
    }).then(
      (response) =>
        response.json() as Promise<{ data: { registerClinic: { clinic: { subdomain: string } } } }>,
    );
    expect(registered.data.registerClinic.clinic.subdomain).toBe('clinique-partagee');
    const { key } = await registerApp();
    expect(
      (await start(key, { email: 'a@example.com', organization_name: 'Clinique Partagée' })).body.subdomain,
    ).toBe('clinique-partagee-2');
    // A reserved name gets a generated one, not a look-alike such as admin-2 (reserved.test.ts).
    expect((await start(key, { email: 'a@example.com', organization_name: 'Admin' })).body.subdomain).toMatch(
      /^[a-z]+-[a-z]+-\d{4}$/,
    );
  });
});

describe('OpenAPI and logs', () => {
  it('serves an OpenAPI 3.1 document describing every route of the router', async () => {
    const response = await restClient(t.url)('GET', '/api/v1/openapi.json');
    expect(response.status).toBe(200);
    expect(response.body.openapi).toBe('3.1.0');
    for (const route of ONBOARDING_ROUTES) {
      expect(response.body.paths[route.path], route.path).toBeDefined();
      expect(
        response.body.paths[route.path][route.method.toLowerCase()],
        `${route.method} ${route.path}`,
      ).toBeDefined();
    }
    expect(Object.keys(openApiDocument('http://x').paths ?? {}).sort()).toEqual(
      [...new Set(ONBOARDING_ROUTES.map((route) => route.path))].sort(),
    );
  });

  it("the document passes Redocly's recommended rules without a warning", async () => {
    const config = await createConfig({
      extends: ['recommended-strict'],
      // The documented paths, verbatim: `status/{uuid}` and `{uuid}/complete` cannot both match,
      // since a uuid is never "status".
      rules: { 'no-ambiguous-paths': 'off' },
    });
    const problems = await lintFromString({
      source: JSON.stringify(openApiDocument('https://onramp.akasigroup.fr')),
      absoluteRef: 'openapi.json',
      config,
    });
    expect(
      problems.map((problem) => `${problem.ruleId}: ${problem.message} at ${problem.location[0]?.pointer}`),
    ).toEqual([]);
  });

  it('describes every field, and gives every operation an example and its error responses', () => {
    // biome-ignore lint/suspicious/noExplicitAny: a JSON document walked by hand
    type Json = any;
    const document: Json = openApiDocument('http://x');
    const undescribed: string[] = [];
    const walk = (schema: Json, where: string): void => {
      if (!schema) return;
      if (schema.$ref) {
        walk(document.components.schemas[schema.$ref.split('/').pop()], where);
        return;
      }
      for (const [name, property] of Object.entries<Json>(schema.properties ?? {})) {
        // References carry the description of their component; `success` is a constant.
        if (!property.description && !property.$ref && name !== 'success')
          undescribed.push(`${where}.${name}`);
        walk(property, `${where}.${name}`);
      }
    };
    for (const [path, item] of Object.entries<Json>(document.paths)) {
      for (const [method, operation] of Object.entries<Json>(item)) {
        const where = `${method.toUpperCase()} ${path}`;
        const body = operation.requestBody?.content['application/json'];
        if (body) {
          expect(body.example, `${where} request example`).toBeDefined();
          walk(body.schema, `${where} body`);
        }
        const guided = path.startsWith('/api/v1/onboarding') || path === '/api/v1/applications/register';
        if (guided) {
          for (const status of ['400', '401', '422', '429', '500']) {
            expect(operation.responses[status], `${where} ${status}`).toBeDefined();
          }
        }
        if (guided || path.startsWith('/api/v1/webhooks')) {
          for (const [status, response] of Object.entries<Json>(operation.responses)) {
            const content = response.content?.['application/json'];
            expect(content?.example, `${where} ${status} example`).toBeDefined();
            walk(content?.schema, `${where} ${status}`);
          }
        }
      }
    }
    expect(undescribed).toEqual([]);
  });

  it('serves Redoc at /api/v1/docs from this server, its bundle cached and compressed', async () => {
    const page = await fetch(`${t.url}/api/v1/docs`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await page.text();
    expect(html).toContain('spec-url="/api/v1/openapi.json"');
    const scripts = [...html.matchAll(/<script src="([^"]+)"/g)].map((match) => match[1] ?? '');
    expect(scripts).toHaveLength(1);
    expect(scripts[0]).toMatch(/^\/api\/v1\/docs\/redoc-[\d.]+\.js$/);
    const bundle = await fetch(`${t.url}${scripts[0]}`, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-encoding')).toBe('gzip');
    expect(bundle.headers.get('cache-control')).toContain('immutable');
    const source = await bundle.text();
    expect(source.length).toBeGreaterThan(100_000);
    // Nothing fetched from Redocly's CDN (its logo is inlined).
    expect(source).not.toContain('cdn.redoc.ly');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
  });

  it('an unknown route answers the envelope: success false, error, message', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nothing-here'],
      ['POST', '/api/v1/onboarding'],
      ['GET', '/api/v2/onboarding/start'],
    ] as const) {
      const response = await rest(method, path);
      expect(response.status, path).toBe(404);
      expect(response.body, path).toEqual({
        success: false,
        error: 'not_found',
        message: `No route ${method} ${path}; the reference is at /api/v1/docs`,
      });
      expect(response.headers.get('content-language')).toBe('en');
    }
  });

  it('405 for a known path with the wrong method', async () => {
    const response = await rest('GET', '/api/v1/onboarding/start');
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });
});

describe('one language per answer', () => {
  it('English by default, the French of the guide for complete with Accept-Language: fr', async () => {
    const { key } = await registerApp();
    const complete = async (language?: string) => {
      const { uuid } = (await start(key)).body;
      await rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid } });
      return rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
        key,
        headers: language === undefined ? {} : { 'Accept-Language': language },
        body: { tenant_id: 't' },
      });
    };
    for (const language of [undefined, 'en', 'de-DE, en;q=0.5, fr;q=0.4', 'fr;q=0, en']) {
      const answer = await complete(language);
      expect(answer.body.message, String(language)).toBe('Onboarding marked as completed');
      expect(answer.headers.get('content-language')).toBe('en');
    }
    for (const language of ['fr', 'fr-FR,fr;q=0.9,en;q=0.8', 'en;q=0.5, fr-CA']) {
      const answer = await complete(language);
      expect(answer.body.message, language).toBe('Onboarding marqué comme complété avec succès');
      expect(answer.headers.get('content-language')).toBe('fr');
    }
  });

  it('refusals in French when asked, and wholly English where only English exists', async () => {
    const fr = { 'Accept-Language': 'fr-FR' };
    const unknown = await rest('GET', '/api/v1/nothing-here', { headers: fr });
    expect(unknown.body).toEqual({
      success: false,
      error: 'not_found',
      message: 'Aucune route GET /api/v1/nothing-here ; la référence est sur /api/v1/docs',
    });
    expect(unknown.headers.get('content-language')).toBe('fr');
    const anonymous = await rest('POST', '/api/v1/onboarding/start', { headers: fr, body: {} });
    expect(anonymous.body.message).toBe('Envoyez votre master key dans X-Master-Key');
    const { key } = await registerApp();
    const missing = await rest('GET', `/api/v1/onboarding/status/${randomUUID()}`, { key, headers: fr });
    expect(missing.body.message).toBe('Aucun onboarding avec cet uuid pour cette application');
    expect((await rest('GET', '/api/v1/onboarding/start', { headers: fr })).body.message).toBe(
      'Utilisez POST',
    );
    // Field messages exist in English only: the whole answer is English, and says so.
    const invalid = await start(key, { email: 'nope' });
    const invalidFr = await rest('POST', '/api/v1/onboarding/start', {
      key,
      headers: fr,
      body: { email: 'nope' },
    });
    expect(invalidFr.body).toEqual(invalid.body);
    expect(invalidFr.body.message).toBe('Enter a valid e-mail address');
    expect(invalidFr.headers.get('content-language')).toBe('en');
  });
});

describe('the same operations in GraphQL', () => {
  const ONBOARDING_FIELDS =
    'uuid subdomain fullDomain url email organizationName status tenantId completedAt metadata { dnsConfigured sslConfigured infrastructureStatus apiKeyGenerated provisioningAttempts }';
  const gqlAs = async (
    query: string,
    variables: Record<string, unknown>,
    headers: Record<string, string>,
  ) => {
    const response = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query, variables }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: checked field by field
    return { status: response.status, body: (await response.json()) as any };
  };

  it('registerApplication (super-admin), applications, then start → provision → onboarding → complete by master key', async () => {
    const admin = await t.superAdmin();
    const registered = await gqlAs(
      `mutation ($name: String!) { registerApplication(name: $name) { __typename
        ... on ApplicationKeyIssued { masterKey application { id name hasActiveKey } } ... on Error { code } } }`,
      { name: 'ERP GraphQL' },
      admin,
    );
    const issued = registered.body.data.registerApplication;
    expect(issued).toMatchObject({
      __typename: 'ApplicationKeyIssued',
      application: { name: 'ERP GraphQL', hasActiveKey: true },
    });
    expect(issued.masterKey).toMatch(/^mk_/);
    secrets.push(issued.masterKey);
    const key = { 'X-Master-Key': issued.masterKey };

    const list = await gqlAs('{ applications { id name onboardingsCount } }', {}, admin);
    expect(list.body.data.applications).toContainEqual({
      id: issued.application.id,
      name: 'ERP GraphQL',
      onboardingsCount: 0,
    });
    // Applications are for super-admins, not for applications.
    expect((await gqlAs('{ applications { id } }', {}, key)).body.errors[0].extensions.code).toBe(
      'UNAUTHENTICATED',
    );

    const started = await gqlAs(
      `mutation ($input: StartOnboardingInput!) { startOnboarding(input: $input) { __typename
        ... on StartOnboardingSuccess { onboarding { ${ONBOARDING_FIELDS} } } ... on ValidationError { fields { path message } } } }`,
      { input: { email: 'gql@example.com', organizationName: 'Praxis GraphQL' } },
      key,
    );
    const onboarding = started.body.data.startOnboarding.onboarding;
    expect(onboarding).toMatchObject({
      subdomain: 'praxis-graphql',
      fullDomain: 'praxis-graphql.akasigroup.local',
      url: 'https://praxis-graphql.akasigroup.local',
      status: 'PENDING',
      metadata: { infrastructureStatus: 'PENDING', provisioningAttempts: 0 },
    });

    const PROVISION = `mutation ($uuid: ID!) { provisionOnboarding(uuid: $uuid, generateApiKey: true) { __typename
      ... on ProvisionOnboardingSuccess { apiKey apiSecret isIdempotent onboarding { status metadata { apiKeyGenerated } } }
      ... on Error { code } } }`;
    const provisioned = (await gqlAs(PROVISION, { uuid: onboarding.uuid }, key)).body.data
      .provisionOnboarding;
    expect(provisioned).toMatchObject({
      __typename: 'ProvisionOnboardingSuccess',
      isIdempotent: false,
      apiKey: expect.stringMatching(/^ak_/),
      onboarding: { status: 'ACTIVATED', metadata: { apiKeyGenerated: true } },
    });
    secrets.push(provisioned.apiKey, provisioned.apiSecret);
    expect(
      (await gqlAs(PROVISION, { uuid: onboarding.uuid }, key)).body.data.provisionOnboarding,
    ).toMatchObject({
      isIdempotent: true,
      apiKey: null,
      apiSecret: null,
    });

    const QUERY = `query ($uuid: ID!) { onboarding(uuid: $uuid) { status subdomain } }`;
    expect((await gqlAs(QUERY, { uuid: onboarding.uuid }, key)).body.data.onboarding).toEqual({
      status: 'ACTIVATED',
      subdomain: 'praxis-graphql',
    });

    const COMPLETE = `mutation ($uuid: ID!, $tenantId: String!, $metadata: JSON) {
      completeOnboarding(uuid: $uuid, tenantId: $tenantId, metadata: $metadata) { __typename
        ... on CompleteOnboardingSuccess { onboarding { status tenantId completedAt } } ... on Error { code message } } }`;
    const completed = (
      await gqlAs(
        COMPLETE,
        { uuid: onboarding.uuid, tenantId: 'tenant_gql', metadata: { users_count: 3 } },
        key,
      )
    ).body.data.completeOnboarding;
    expect(completed).toMatchObject({
      __typename: 'CompleteOnboardingSuccess',
      onboarding: { status: 'COMPLETED', tenantId: 'tenant_gql' },
    });
    expect(
      (await gqlAs(COMPLETE, { uuid: onboarding.uuid, tenantId: 'other' }, key)).body.data.completeOnboarding,
    ).toMatchObject({ __typename: 'ConflictError', code: 'CONFLICT' });

    // Another application: null for the query, NOT_FOUND data for mutations.
    const stranger = { 'X-Master-Key': (await registerApp()).key };
    expect((await gqlAs(QUERY, { uuid: onboarding.uuid }, stranger)).body.data.onboarding).toBeNull();
    expect(
      (await gqlAs(PROVISION, { uuid: onboarding.uuid }, stranger)).body.data.provisionOnboarding,
    ).toEqual({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
    });
    expect(
      (await gqlAs(COMPLETE, { uuid: onboarding.uuid, tenantId: 'x' }, stranger)).body.data
        .completeOnboarding,
    ).toMatchObject({ __typename: 'NotFoundError', code: 'NOT_FOUND' });
  });

  it('errors as data, UNAUTHENTICATED without a key, RATE_LIMITED with retryAfter and HTTP 429', async () => {
    const { key } = await registerApp();
    const START = `mutation ($input: StartOnboardingInput!) { startOnboarding(input: $input) { __typename
      ... on ValidationError { code fields { path message } } ... on StartOnboardingSuccess { onboarding { uuid } } } }`;
    const invalid = await gqlAs(START, { input: { email: 'nope' } }, { 'X-Master-Key': key });
    expect(invalid.body.data.startOnboarding).toEqual({
      __typename: 'ValidationError',
      code: 'VALIDATION_FAILED',
      fields: [{ path: ['input', 'email'], message: 'Enter a valid e-mail address' }],
    });
    const anonymous = await gqlAs(START, { input: { email: 'a@example.com' } }, {});
    expect(anonymous.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    const wrong = await gqlAs(
      START,
      { input: { email: 'a@example.com' } },
      { 'X-Master-Key': 'mk_0000000000000000_x' },
    );
    expect(wrong.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');

    // The invalid start above did not count; 10 valid ones do.
    for (let i = 0; i < 10; i += 1) {
      const ok = await gqlAs(START, { input: { email: 'a@example.com' } }, { 'X-Master-Key': key });
      expect(ok.body.data.startOnboarding.__typename).toBe('StartOnboardingSuccess');
    }
    const limited = await gqlAs(START, { input: { email: 'a@example.com' } }, { 'X-Master-Key': key });
    expect(limited.status).toBe(429);
    expect(limited.body.errors[0].extensions).toMatchObject({
      code: 'RATE_LIMITED',
      retryAfter: expect.any(Number),
    });
    expect(limited.body.errors[0].extensions.retryAfter).toBeGreaterThan(3500);
  });

  it('rotateApplicationKey / revokeApplicationKey: NOT_FOUND for an unknown application; super-admins only', async () => {
    const admin = await t.superAdmin();
    const ROTATE =
      'mutation ($id: ID!) { rotateApplicationKey(applicationId: $id) { __typename ... on Error { code } } }';
    expect((await gqlAs(ROTATE, { id: crypto.randomUUID() }, admin)).body.data.rotateApplicationKey).toEqual({
      __typename: 'NotFoundError',
      code: 'NOT_FOUND',
    });
    const { id, key } = await registerApp();
    expect((await gqlAs(ROTATE, { id }, { 'X-Master-Key': key })).body.errors[0].extensions.code).toBe(
      'UNAUTHENTICATED',
    );
    const audit = await prisma.auditLog.findMany({ where: { targetId: id }, orderBy: { id: 'asc' } });
    expect(audit.map((entry) => entry.action)).toEqual(['application.registered']);
  });
});

describe('applicationOnboardings (the console)', () => {
  const LIST = `query ($applicationId: ID, $status: OnboardingStatus, $first: Int) {
    applicationOnboardings(applicationId: $applicationId, status: $status, first: $first) {
      uuid applicationId subdomain status tenantId completedAt
      metadata { dnsConfigured sslConfigured infrastructureStatus apiKeyGenerated provisioningAttempts createdAt updatedAt }
    } }`;

  it("lists one application's onboardings newest first with their metadata, or everyone's, and the key prefix", async () => {
    const admin = await t.superAdmin();
    const mine = await registerApp();
    const other = await registerApp();
    const first = await start(mine.key, { email: 'one@example.com', organization_name: 'Console Un' });
    const second = await start(mine.key, { email: 'two@example.com', organization_name: 'Console Deux' });
    const theirs = await start(other.key, { email: 'x@example.com', organization_name: 'Console Autre' });
    expect([first.status, second.status, theirs.status]).toEqual([201, 201, 201]);
    const provisioned = await rest('POST', '/api/v1/onboarding/provision', {
      key: mine.key,
      body: { uuid: first.body.uuid, generate_api_key: true },
    });
    expect(provisioned.status).toBe(200);
    secrets.push(provisioned.body.api_key, provisioned.body.api_secret);
    const completed = await rest('POST', `/api/v1/onboarding/${first.body.uuid}/complete`, {
      key: mine.key,
      body: { tenant_id: 'tenant_console' },
    });
    expect(completed.status).toBe(200);

    const { body } = await gql(t.url, LIST, { applicationId: mine.id }, admin);
    expect(body.errors).toBeUndefined();
    const list = body.data.applicationOnboardings;
    expect(list.map((o: { uuid: string }) => o.uuid)).toEqual([second.body.uuid, first.body.uuid]);
    expect(list[0]).toMatchObject({
      applicationId: mine.id,
      subdomain: 'console-deux',
      status: 'PENDING',
      tenantId: null,
      completedAt: null,
      metadata: {
        dnsConfigured: false,
        sslConfigured: false,
        infrastructureStatus: 'PENDING',
        provisioningAttempts: 0,
      },
    });
    expect(list[1]).toMatchObject({
      subdomain: 'console-un',
      status: 'COMPLETED',
      tenantId: 'tenant_console',
      completedAt: expect.stringMatching(ISO),
      metadata: {
        dnsConfigured: true,
        sslConfigured: true,
        infrastructureStatus: 'READY',
        apiKeyGenerated: true,
        provisioningAttempts: 1,
        createdAt: expect.stringMatching(ISO),
      },
    });

    // Filters: by status; without an application, every application's (here, the other one's too).
    const completedOnly = await gql(t.url, LIST, { applicationId: mine.id, status: 'COMPLETED' }, admin);
    expect(completedOnly.body.data.applicationOnboardings.map((o: { uuid: string }) => o.uuid)).toEqual([
      first.body.uuid,
    ]);
    const everyone = await gql(t.url, LIST, { first: 500 }, admin);
    const uuids = everyone.body.data.applicationOnboardings.map((o: { uuid: string }) => o.uuid);
    expect(uuids).toEqual(expect.arrayContaining([first.body.uuid, second.body.uuid, theirs.body.uuid]));
    expect(uuids.indexOf(theirs.body.uuid)).toBeLessThan(uuids.indexOf(second.body.uuid));
    const one = await gql(t.url, LIST, { first: 1 }, admin);
    expect(one.body.data.applicationOnboardings.map((o: { uuid: string }) => o.uuid)).toEqual([
      theirs.body.uuid,
    ]);

    // A malformed or unknown application id matches nothing (like onboarding(uuid)).
    for (const applicationId of ['nope', crypto.randomUUID()]) {
      const none = await gql(t.url, LIST, { applicationId }, admin);
      expect(none.body).toEqual({ data: { applicationOnboardings: [] } });
    }

    // The key prefix tells keys apart without revealing them; gone once revoked.
    const PREFIX = '{ applications { id keyPrefix hasActiveKey } }';
    const apps = (await gql(t.url, PREFIX, {}, admin)).body.data.applications;
    const listed = apps.find((app: { id: string }) => app.id === mine.id);
    expect(mine.key.startsWith(`${listed.keyPrefix}_`)).toBe(true);
    expect(listed.keyPrefix).toMatch(/^mk_[0-9a-f]{16}$/);
    await gql(
      t.url,
      'mutation ($id: ID!) { revokeApplicationKey(applicationId: $id) { __typename } }',
      { id: mine.id },
      admin,
    );
    const after = (await gql(t.url, PREFIX, {}, admin)).body.data.applications;
    expect(after.find((app: { id: string }) => app.id === mine.id)).toEqual({
      id: mine.id,
      keyPrefix: null,
      hasActiveKey: false,
    });
  });
});

describe('logs, after everything above', () => {
  it('never logs a master key, an API key or an API secret (and does log the onboardings)', async () => {
    const logs = t.logs();
    expect(secrets.length).toBeGreaterThan(10);
    expect(logs).toContain('onboarding provisioned');
    expect(logs).toContain('onboarding request');
    for (const secret of secrets) expect(logs).not.toContain(secret);
    expect(logs).not.toMatch(/mk_[0-9a-f]{16}_/);
    expect(logs).not.toMatch(/"as_[A-Za-z0-9_-]{43}/);
  });
});
