/**
 * Integrator webhooks against a local receiver: endpoints registered with signed API
 * credentials, deliveries queued with the state change, signed (Stripe's scheme), retried,
 * recorded, replayable; nothing for a change that rolled back; private targets refused.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { afterFile, lockWaiters } from '../../../test/harness.js';
import { REPO_ROOT } from '../../db/paths.js';
import { withClient } from '../../db/sql.js';
import { signRequest } from '../onboarding/api-credentials.js';
import { gql, restClient, startCapturingApp } from '../onboarding/helpers.test-support.js';
import { WebhookService } from './service.js';
import { signWebhook, verifyWebhookSignature } from './signature.js';
import { BlockedTargetError, guardedLookup, isPrivateAddress, targetProblem } from './targets.js';

const t = await startCapturingApp({
  ONBOARDING_IP_LIMIT: '100000/1h',
  ONBOARDING_START_LIMIT: '1000/1h',
  WEBHOOK_ALLOW_PRIVATE_TARGETS: '1',
  WEBHOOK_RETRY_BASE_MS: '20',
});
const rest = restClient(t.url);
const { prisma } = t.app.deps.db;

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A local webhook receiver: records every request and answers from `statuses`, then 200. */
async function receiver() {
  const received: Received[] = [];
  const statuses: number[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(statuses.shift() ?? 200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterFile(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { base, received, statuses };
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

type Credentials = { uuid: string; apiKey: string; apiSecret: string };

/** An application, one provisioned onboarding with API credentials, and the master key. */
async function application() {
  const registered = await rest('POST', '/api/v1/applications/register', {
    headers: await t.superAdmin(),
    body: { app_name: `App ${Math.random().toString(36).slice(2, 8)}` },
  });
  const key = registered.body.master_key as string;
  const start = async () =>
    (await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'a@example.com' } })).body
      .uuid as string;
  const provision = (uuid: string, generate = false) =>
    rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid, generate_api_key: generate } });
  const first = await start();
  const done = await provision(first, true);
  expect(done.status).toBe(200);
  const credentials: Credentials = {
    uuid: first,
    apiKey: done.body.api_key as string,
    apiSecret: done.body.api_secret as string,
  };
  return { appId: registered.body.app_id as string, key, credentials, start, provision };
}

/**
 * A signed request. Each signature is accepted once, and two identical requests within one
 * second sign the same: a GET carries a random query parameter so that repeating it is not a replay.
 */
function signed(credentials: Credentials, method: 'GET' | 'POST' | 'DELETE', target: string, body?: unknown) {
  const path = method === 'GET' ? `${target}?n=${Math.random().toString(36).slice(2)}` : target;
  const timestamp = String(Math.floor(Date.now() / 1000));
  const raw = body === undefined ? '' : JSON.stringify(body);
  return rest(method, path, {
    headers: {
      'X-Api-Key': credentials.apiKey,
      'X-Onramp-Timestamp': timestamp,
      'X-Onramp-Signature': signRequest(credentials.apiSecret, { method, path, timestamp, body: raw }),
    },
    ...(body === undefined ? {} : { raw }),
  });
}

async function endpoint(credentials: Credentials, url: string, events: string[]) {
  const created = await signed(credentials, 'POST', '/api/v1/webhooks', { url, events });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return { id: created.body.id as string, secret: created.body.secret as string };
}

const ofType = (received: Received[], type: string, uuid: string) =>
  received.filter((r) => {
    const event = JSON.parse(r.body) as { type: string; data: { uuid: string } };
    return event.type === type && event.data.uuid === uuid;
  });

describe('webhook endpoints over REST, with signed API credentials', () => {
  it('register (secret shown once, kept encrypted), list, refuse bad input and unsigned calls, delete', async () => {
    const app = await application();
    const hook = await receiver();
    const created = await signed(app.credentials, 'POST', '/api/v1/webhooks', {
      url: `${hook.base}/hooks`,
      events: ['onboarding.provisioned', 'onboarding.completed'],
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      success: true,
      url: `${hook.base}/hooks`,
      events: ['onboarding.provisioned', 'onboarding.completed'],
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9_-]{43}$/),
    });
    const row = await prisma.webhookEndpoint.findUniqueOrThrow({ where: { id: created.body.id } });
    expect(row.secretEncrypted).not.toContain(created.body.secret);
    expect(row.createdByOnboardingId).toBe(app.credentials.uuid);

    const listed = await signed(app.credentials, 'GET', '/api/v1/webhooks');
    expect(listed.body.webhooks).toEqual([
      {
        id: created.body.id,
        url: `${hook.base}/hooks`,
        events: ['onboarding.provisioned', 'onboarding.completed'],
        created_at: expect.any(String),
      },
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);

    const invalid = await signed(app.credentials, 'POST', '/api/v1/webhooks', {
      url: 'ftp://example.com/x',
      events: ['onboarding.exploded'],
    });
    expect(invalid.status).toBe(422);
    expect(invalid.body.errors).toEqual([
      { field: 'url', message: 'url must be an http(s):// URL' },
      { field: 'events.0', message: expect.stringMatching(/^Unknown event/) },
    ]);
    const nul = await signed(app.credentials, 'POST', '/api/v1/webhooks', {
      url: 'https://example.com/\u0000',
      events: ['onboarding.failed'],
    });
    expect(nul.status).toBe(422);
    const unsigned = await rest('POST', '/api/v1/webhooks', {
      key: app.key,
      body: { url: 'https://example.com/x', events: ['onboarding.failed'] },
    });
    expect(unsigned.status).toBe(401);
    expect(unsigned.body.error).toBe('unauthenticated');

    // Another application's credentials neither see nor delete it.
    const stranger = await application();
    expect((await signed(stranger.credentials, 'GET', '/api/v1/webhooks')).body.webhooks).toEqual([]);
    const path = `/api/v1/webhooks/${created.body.id}`;
    expect((await signed(stranger.credentials, 'DELETE', path)).status).toBe(404);
    const deleted = await signed(app.credentials, 'DELETE', path);
    expect(deleted.body).toEqual({ success: true, id: created.body.id, deleted: true });
    expect((await signed(app.credentials, 'GET', '/api/v1/webhooks')).body.webhooks).toEqual([]);

    // Deleted: a provisioned onboarding sends nothing.
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    expect(await prisma.webhookDelivery.count({ where: { onboardingId: uuid } })).toBe(0);
    const actions = await prisma.auditLog.findMany({ where: { targetId: created.body.id } });
    expect(actions.map((entry) => entry.action).sort()).toEqual([
      'webhook.endpoint_created',
      'webhook.endpoint_deleted',
    ]);
    expect(t.logs()).not.toContain(created.body.secret);
  });

  it('a signed registration whose body was changed in transit is refused, and registers nothing', async () => {
    const app = await application();
    const path = '/api/v1/webhooks';
    const timestamp = String(Math.floor(Date.now() / 1000));
    const sent = JSON.stringify({ url: 'https://hooks.example.com/mine', events: ['onboarding.completed'] });
    const headers = {
      'X-Api-Key': app.credentials.apiKey,
      'X-Onramp-Timestamp': timestamp,
      'X-Onramp-Signature': signRequest(app.credentials.apiSecret, {
        method: 'POST',
        path,
        timestamp,
        body: sent,
      }),
    };
    // Someone on the way points the application's events at their own server.
    const altered = sent.replace('hooks.example.com/mine', 'attacker.example.net/x');
    const answer = await rest('POST', path, { headers, raw: altered });
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ error: 'invalid_signature' });
    expect(
      await prisma.webhookEndpoint.count({ where: { createdByOnboardingId: app.credentials.uuid } }),
    ).toBe(0);
    // The request as signed still goes through: only the change was refused.
    expect((await rest('POST', path, { headers, raw: sent })).status).toBe(201);
  });
});

describe('deliveries', () => {
  it('are signed: the receiver verifies t.body with the secret; provisioned, then completed', async () => {
    const app = await application();
    const hook = await receiver();
    const { secret } = await endpoint(app.credentials, `${hook.base}/in`, [
      'onboarding.provisioned',
      'onboarding.completed',
    ]);
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    const [provisioned] = await eventually('provisioned', () => {
      const found = ofType(hook.received, 'onboarding.provisioned', uuid);
      return found.length > 0 ? found : undefined;
    });
    if (!provisioned) throw new Error('unreachable');
    const header = provisioned.headers['onramp-signature'] as string;
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(secret, header, provisioned.body)).toMatchObject({ ok: true });
    expect(verifyWebhookSignature(`${secret}x`, header, provisioned.body)).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(
      verifyWebhookSignature(secret, header, provisioned.body.replace('activated', 'completed')),
    ).toEqual({
      ok: false,
      reason: 'mismatch',
    });
    expect(provisioned.headers['onramp-event']).toBe('onboarding.provisioned');
    expect(JSON.parse(provisioned.body)).toMatchObject({
      id: expect.stringMatching(/^evt_[0-9a-f]{32}$/),
      type: 'onboarding.provisioned',
      data: { uuid, onboarding_status: 'activated', infrastructure_status: 'ready' },
    });

    const completed = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
      key: app.key,
      body: { tenant_id: 'tenant-42' },
    });
    expect(completed.status).toBe(200);
    const [done] = await eventually('completed', () => {
      const found = ofType(hook.received, 'onboarding.completed', uuid);
      return found.length > 0 ? found : undefined;
    });
    expect(JSON.parse(done?.body ?? '{}')).toMatchObject({
      data: { uuid, onboarding_status: 'completed', tenant_id: 'tenant-42' },
    });
    expect(t.logs()).not.toContain(secret);
  });

  it('a revoked application receives nothing: its endpoints go with its key, one registered during the revocation too, and neither a retry nor a later event is sent', async () => {
    const app = await application();
    const hook = await receiver();
    hook.statuses.push(...Array.from({ length: 10_000 }, () => 500));
    await endpoint(app.credentials, `${hook.base}/in`, ['onboarding.provisioned', 'onboarding.completed']);
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    // Its first attempt failed; retries are due every few tens of milliseconds.
    await eventually('a first attempt', () => (hook.received.length > 0 ? true : undefined));
    const registration = await withClient(t.config.databaseUrl as string, async (client) => {
      const waiting = () => lockWaiters(t.config.databaseUrl as string);
      // The onboarding's row held: the revocation waits with its keys revoked, not committed.
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM onboardings WHERE id = $1 FOR UPDATE', [app.credentials.uuid]);
      const revocation = gql(
        t.url,
        'mutation ($id: ID!) { revokeApplicationKey(applicationId: $id) { __typename } }',
        { id: app.appId },
        await t.superAdmin(),
      );
      await expect.poll(waiting).toBe(1);
      // The credentials still read live, so this registration gets past authentication.
      const registered = signed(app.credentials, 'POST', '/api/v1/webhooks', {
        url: `${hook.base}/late`,
        events: ['onboarding.completed'],
      });
      await expect.poll(waiting).toBeGreaterThanOrEqual(2);
      await client.query('COMMIT');
      expect((await revocation).body.data.revokeApplicationKey.__typename).toBe('ApplicationKeyRevoked');
      return registered;
    });
    expect(registration.status).toBe(404);
    const sentAtRevocation = hook.received.length;
    expect(await prisma.webhookEndpoint.count({ where: { applicationId: app.appId, deletedAt: null } })).toBe(
      0,
    );
    // The pending delivery ends failed at its next attempt, without a request.
    const delivery = await eventually('the delivery to fail', async () => {
      const found = await prisma.webhookDelivery.findFirst({
        where: { applicationId: app.appId, onboardingId: uuid, status: 'failed' },
        include: { attemptsLog: { orderBy: { attempt: 'desc' }, take: 1 } },
      });
      return found ?? undefined;
    });
    expect(delivery.attemptsLog[0]).toMatchObject({
      responseStatus: null,
      error: 'the endpoint was deleted',
    });
    // (One attempt may have been on its way when the revocation committed.)
    expect(hook.received.length).toBeLessThanOrEqual(sentAtRevocation + 1);
    // An event of a run that ends after the revocation (one taken over after a crash) goes nowhere.
    expect(await t.app.deps.webhooks.queue(prisma, 'onboarding.completed', uuid)).toBe(0);
    expect(hook.received.filter((r) => r.path === '/late')).toEqual([]);
  });

  it('a 500 is retried with backoff until a 2xx, each attempt recorded', async () => {
    const app = await application();
    const hook = await receiver();
    await endpoint(app.credentials, `${hook.base}/flaky`, ['onboarding.provisioned']);
    hook.statuses.push(500, 500);
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    const delivery = await eventually('the delivery to succeed', async () => {
      const row = await prisma.webhookDelivery.findFirst({
        where: { onboardingId: uuid },
        include: { attemptsLog: { orderBy: { attempt: 'asc' } } },
      });
      return row?.status === 'succeeded' ? row : undefined;
    });
    expect(delivery.attemptsLog.map((a) => [a.attempt, a.responseStatus, a.error])).toEqual([
      [1, 500, 'HTTP 500'],
      [2, 500, 'HTTP 500'],
      [3, 200, null],
    ]);
    expect(delivery.deliveredAt).not.toBeNull();
    // The same event each time (the receiver deduplicates on its id), signed afresh.
    const events = ofType(hook.received, 'onboarding.provisioned', uuid);
    expect(new Set(events.map((e) => e.body)).size).toBe(1);
    expect(events).toHaveLength(3);
  });

  it('a captured delivery sent again later fails the receiver check; an operator replay is a new signed delivery', async () => {
    const app = await application();
    const hook = await receiver();
    const { secret } = await endpoint(app.credentials, `${hook.base}/replay`, ['onboarding.provisioned']);
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    const [first] = await eventually('provisioned', () => {
      const found = ofType(hook.received, 'onboarding.provisioned', uuid);
      return found.length > 0 ? found : undefined;
    });
    if (!first) throw new Error('unreachable');
    const header = first.headers['onramp-signature'] as string;
    const sentAt = Number(/t=(\d+)/.exec(header)?.[1]);
    // The same bytes presented 6 minutes later: a valid HMAC, but the timestamp is too old.
    expect(verifyWebhookSignature(secret, header, first.body, { now: sentAt + 360 })).toEqual({
      ok: false,
      reason: 'expired',
    });
    expect(verifyWebhookSignature(secret, header, first.body, { now: sentAt + 299 }).ok).toBe(true);
    // Re-signing with another timestamp needs the secret.
    const forged = signWebhook('not the secret', sentAt + 360, first.body);
    expect(verifyWebhookSignature(secret, forged, first.body, { now: sentAt + 360 }).ok).toBe(false);

    const original = await prisma.webhookDelivery.findFirstOrThrow({ where: { onboardingId: uuid } });
    const admin = await t.superAdmin();
    const replayed = await gql(
      t.url,
      `mutation ($id: ID!) { replayWebhookDelivery(deliveryId: $id) {
         __typename ... on ReplayWebhookDeliverySuccess { delivery { id eventId replayOfId status } } } }`,
      { id: original.id },
      admin,
    );
    const delivery = replayed.body.data.replayWebhookDelivery.delivery;
    expect(delivery).toMatchObject({ eventId: original.eventId, replayOfId: original.id, status: 'PENDING' });
    expect(delivery.id).not.toBe(original.id);
    const again = await eventually('the replay', () =>
      hook.received.find((r) => r.headers['onramp-delivery'] === delivery.id),
    );
    expect(again.body).toBe(first.body);
    expect(verifyWebhookSignature(secret, again.headers['onramp-signature'] as string, again.body).ok).toBe(
      true,
    );

    const listed = await gql(
      t.url,
      `query ($app: ID!) { webhookDeliveries(applicationId: $app) { id status replayOfId attempts { attempt responseStatus } } }`,
      { app: app.appId },
      admin,
    );
    await eventually('the replay to be recorded', async () =>
      (await prisma.webhookDelivery.findUniqueOrThrow({ where: { id: delivery.id } })).status === 'succeeded'
        ? true
        : undefined,
    );
    expect(listed.body.data.webhookDeliveries.map((d: { id: string }) => d.id)).toEqual([
      delivery.id,
      original.id,
    ]);
    const audit = await prisma.auditLog.findMany({
      where: { action: 'webhook.delivery_replayed', targetId: delivery.id },
    });
    expect(audit).toHaveLength(1);
    const missing = await gql(
      t.url,
      'mutation { replayWebhookDelivery(deliveryId: "00000000-0000-4000-8000-000000000000") { __typename } }',
      {},
      admin,
    );
    expect(missing.body.data.replayWebhookDelivery.__typename).toBe('NotFoundError');
  });

  it('nothing is sent for a provision that rolled back; its failure is', async () => {
    const app = await application();
    const hook = await receiver();
    await endpoint(app.credentials, `${hook.base}/rollback`, ['onboarding.provisioned', 'onboarding.failed']);
    const uuid = await app.start();

    // An injected fault stops the run before its commit: onboarding.failed, never provisioned.
    t.app.deps.provisioning.injectFault('commit', 1);
    const failed = await app.provision(uuid);
    expect(failed.status).toBe(500);
    const [failure] = await eventually('failed', () => {
      const found = ofType(hook.received, 'onboarding.failed', uuid);
      return found.length > 0 ? found : undefined;
    });
    expect(JSON.parse(failure?.body ?? '{}')).toMatchObject({
      data: { uuid, onboarding_status: 'pending', failed_step: 'commit' },
    });

    // The commit step's transaction fails at COMMIT (a deferred trigger on its audit entry),
    // after the delivery and its job were written: both must vanish with it.
    await prisma.$executeRawUnsafe(`
      CREATE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'test: commit refused'; END $$`);
    await prisma.$executeRawUnsafe(`
      CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT ON audit_log
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
      WHEN (NEW.action = 'onboarding.provisioned') EXECUTE FUNCTION test_refuse_commit()`);
    try {
      expect((await app.provision(uuid)).status).toBe(500);
    } finally {
      await prisma.$executeRawUnsafe('DROP TRIGGER test_refuse_commit ON audit_log');
      await prisma.$executeRawUnsafe('DROP FUNCTION test_refuse_commit()');
    }
    const onboarding = await prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } });
    expect(onboarding.status).toBe('pending');
    expect(
      await prisma.webhookDelivery.count({ where: { onboardingId: uuid, event: 'onboarding.provisioned' } }),
    ).toBe(0);
    const orphanJobs = await prisma.$queryRawUnsafe<{ count: bigint }[]>(`
      SELECT count(*) FROM graphile_worker._private_jobs j
        JOIN graphile_worker._private_tasks task ON task.id = j.task_id
       WHERE task.identifier = 'deliver_webhook'
         AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.id::text = j.payload->>'deliveryId')`);
    expect(Number(orphanJobs[0]?.count)).toBe(0);

    // Provisioned for real, it is sent: the receiver saw the provisioned event once, after.
    expect((await app.provision(uuid)).status).toBe(200);
    await eventually('provisioned', () => {
      const found = ofType(hook.received, 'onboarding.provisioned', uuid);
      return found.length > 0 ? found : undefined;
    });
    expect(ofType(hook.received, 'onboarding.provisioned', uuid)).toHaveLength(1);
  });
});

describe('targets', () => {
  it('loopback, private, link-local and reserved addresses are refused; production wants https', () => {
    const strict = { requireHttps: true, allowPrivate: false };
    for (const url of [
      'https://127.0.0.1/x',
      'https://10.1.2.3/x',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'https://[fd00::1]/x',
      'https://localhost/x',
      'https://intranet/x',
    ]) {
      expect(targetProblem(url, strict), url).not.toBeNull();
    }
    expect(targetProblem('http://example.com/x', strict)).toBe('must be an https:// URL');
    expect(targetProblem('https://user:pw@example.com/x', strict)).toMatch(/user name/);
    expect(targetProblem('https://hooks.example.com/onramp', strict)).toBeNull();
    expect(targetProblem('http://127.0.0.1:9/x', { requireHttps: false, allowPrivate: true })).toBeNull();
    expect(isPrivateAddress('8.8.8.8')).toBe(false);
    expect(isPrivateAddress('2606:4700::1111')).toBe(false);
  });

  it('a private target is refused at delivery too, and a name resolving to one is never connected to', async () => {
    const app = await application();
    const hook = await receiver();
    // Registered while private targets were allowed (a setting since turned off).
    const { id } = await endpoint(app.credentials, `${hook.base}/late`, ['onboarding.completed']);
    const strict = new WebhookService({
      config: { ...t.config, webhookAllowPrivateTargets: false, webhookRetryBaseMs: 3_600_000 },
      logger: t.app.deps.logger,
      prisma,
    });
    // The row alone, without a job: only `strict` attempts it.
    const delivery = await prisma.webhookDelivery.create({
      data: {
        endpointId: id,
        applicationId: app.appId,
        eventId: 'evt_test',
        event: 'onboarding.completed',
        body: '{}',
      },
    });
    await strict.deliver(delivery.id);
    const attempts = await prisma.webhookAttempt.findMany({ where: { deliveryId: delivery.id } });
    expect(attempts.map((a) => [a.responseStatus, a.error])).toEqual([
      [null, 'the URL must not point at a loopback, private or reserved address'],
    ]);
    expect(hook.received).toEqual([]);
    // DNS rebinding: the lookup used for the connection refuses what a name resolves to.
    const refused = await new Promise<Error | null>((resolve) =>
      guardedLookup(false)('localhost', {}, (error) => resolve(error)),
    );
    expect(refused).toBeInstanceOf(BlockedTargetError);
    const allowed = await new Promise<Error | null>((resolve) =>
      guardedLookup(true)('localhost', {}, (error) => resolve(error)),
    );
    expect(allowed).toBeNull();
  });
});

describe("the README's examples", () => {
  /** The JavaScript blocks of a README section, without their import lines. */
  function blocks(section: string): string[] {
    const readme = readFileSync(resolve(REPO_ROOT, 'README.md'), 'utf8');
    const start = readme.indexOf(`### ${section}\n`);
    const end = readme.indexOf('\n#', start + 4);
    return [...readme.slice(start, end).matchAll(/```js\n([\s\S]*?)```/g)].map((match) =>
      (match[1] ?? '').replace(/^import .*$/gm, ''),
    );
  }

  it('the signed request registers an endpoint; the receiver check verifies its deliveries', async () => {
    const app = await application();
    const hook = await receiver();
    const [request] = blocks('Signed API requests');
    const run = new Function(
      'API_KEY',
      'API_SECRET',
      'createHash',
      'createHmac',
      'fetch',
      `return (async () => { ${request}; return { status: answer.status, secret }; })();`,
    );
    // As written, against this server: its signature is accepted and the endpoint created.
    const written = (await run(
      app.credentials.apiKey,
      app.credentials.apiSecret,
      createHash,
      createHmac,
      (url: string, init: RequestInit) => fetch(url.replace('http://localhost:4000', t.url), init),
    )) as { status: number; secret: string };
    expect(written.status).toBe(201);
    expect(written.secret).toMatch(/^whsec_/);
    const [created] = await prisma.webhookEndpoint.findMany({ where: { applicationId: app.appId } });
    expect(created?.url).toBe('https://erp.example.com/onramp');
    expect((await signed(app.credentials, 'DELETE', `/api/v1/webhooks/${created?.id}`)).status).toBe(200);

    const { secret } = await endpoint(app.credentials, `${hook.base}/readme`, ['onboarding.provisioned']);
    const uuid = await app.start();
    expect((await app.provision(uuid)).status).toBe(200);
    const delivered = await eventually(
      'provisioned',
      () => ofType(hook.received, 'onboarding.provisioned', uuid)[0],
    );
    const [receiverCode] = blocks('Webhooks');
    const verify = new Function('createHmac', 'timingSafeEqual', `${receiverCode}; return verify;`)(
      createHmac,
      timingSafeEqual,
    ) as (secret: string, header: unknown, body: string | Buffer) => boolean;
    const header = delivered.headers['onramp-signature'];
    expect(verify(secret, header, delivered.body)).toBe(true);
    expect(verify(secret, header, Buffer.from(delivered.body))).toBe(true);
    expect(verify(`${secret}x`, header, delivered.body)).toBe(false);
    expect(verify(secret, header, `${delivered.body} `)).toBe(false);
    expect(verify(secret, undefined, delivered.body)).toBe(false);
  });
});
