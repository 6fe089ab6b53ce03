/**
 * A provision in flight while its application's master key is revoked (decisions 087, 088, 091,
 * 096): held after its key was checked, at its DNS and certificate steps, at its commit, and a
 * burst of calls racing one revocation. After the revocation returns no tenant holds working
 * credentials, every call with the old key or credentials is refused, and no pending onboarding
 * of the application keeps a DNS record or a live certificate.
 */
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { lockWaiters } from '../../../test/harness.js';
import { withClient } from '../../db/sql.js';
import { signRequest } from './api-credentials.js';
import { gql, type RestResponse, restClient, startCapturingApp } from './helpers.test-support.js';

const t = await startCapturingApp({ ONBOARDING_IP_LIMIT: '100000/1h', ONBOARDING_START_LIMIT: '1000/1h' });
const rest = restClient(t.url);
const { prisma } = t.app.deps.db;

/** A held request can take a while to reach its lock on a loaded machine. */
const POLL = { timeout: 10_000 };

interface Credentials {
  uuid: string;
  apiKey: string;
  apiSecret: string;
}

async function application() {
  const registered = await rest('POST', '/api/v1/applications/register', {
    headers: await t.superAdmin(),
    body: { app_name: `App ${Math.random().toString(36).slice(2, 8)}` },
  });
  const key = registered.body.master_key as string;
  const appId = registered.body.app_id as string;
  const start = async () => {
    const started = await rest('POST', '/api/v1/onboarding/start', { key, body: { email: 'a@example.com' } });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    return started.body.uuid as string;
  };
  const provision = (uuid: string) =>
    rest('POST', '/api/v1/onboarding/provision', { key, body: { uuid, generate_api_key: true } });
  const provisioned = async (): Promise<Credentials> => {
    const uuid = await start();
    const done = await provision(uuid);
    expect(done.status, JSON.stringify(done.body)).toBe(200);
    return { uuid, apiKey: done.body.api_key as string, apiSecret: done.body.api_secret as string };
  };
  // The super-admin's session is opened before any lock a test holds (it writes an audit entry).
  const admin = await t.superAdmin();
  const revoke = () =>
    gql(
      t.url,
      'mutation ($id: ID!) { revokeApplicationKey(applicationId: $id) { __typename } }',
      { id: appId },
      admin,
    ).then((answer) => answer.body.data?.revokeApplicationKey?.__typename as string | undefined);
  const rotate = () =>
    gql(
      t.url,
      'mutation ($id: ID!) { rotateApplicationKey(applicationId: $id) { ... on ApplicationKeyIssued { masterKey } } }',
      { id: appId },
      admin,
    ).then((answer) => answer.body.data?.rotateApplicationKey?.masterKey as string);
  return { key, appId, start, provision, provisioned, revoke, rotate };
}

/** Each signature is accepted once: every check signs with a timestamp of its own. */
let signedChecks = 0;
function status(credentials: Credentials): Promise<RestResponse> {
  signedChecks += 1;
  const timestamp = String(Math.floor(Date.now() / 1000) - (signedChecks % 250));
  const path = `/api/v1/onboarding/status/${credentials.uuid}`;
  const signature = signRequest(credentials.apiSecret, { method: 'GET', path, timestamp, body: '' });
  return rest('GET', path, {
    headers: {
      'X-Api-Key': credentials.apiKey,
      'X-Onramp-Timestamp': timestamp,
      'X-Onramp-Signature': signature,
    },
  });
}

/** Backends of this database waiting on a lock, whose statement matches `pattern` (ILIKE). */
const waiting = (pattern?: string) => lockWaiters(t.config.databaseUrl as string, pattern);

/** `work` while `lock` (statements of one transaction) is held on a connection of its own. */
function holding<T>(lock: string[], work: (client: pg.Client) => Promise<T>): Promise<T> {
  return withClient(t.config.databaseUrl as string, async (client) => {
    await client.query('BEGIN');
    for (const statement of lock) await client.query(statement);
    try {
      return await work(client);
    } finally {
      await client.query('ROLLBACK').catch(() => {});
    }
  });
}

function onboardingRow(uuid: string) {
  return prisma.onboarding.findUniqueOrThrow({ where: { id: uuid } });
}

/** The onboarding's DNS records and unrevoked certificates, as the dns and certificates modules keep them. */
async function names(uuid: string): Promise<{ dnsRecords: number; liveCertificates: number }> {
  const fqdn = `${(await onboardingRow(uuid)).subdomain}.${t.config.baseDomain}`;
  return {
    dnsRecords: await prisma.dnsRecord.count({ where: { name: { in: [fqdn, `_acme-challenge.${fqdn}`] } } }),
    liveCertificates: await prisma.certificate.count({ where: { fqdn, revokedAt: null } }),
  };
}

const NONE = { dnsRecords: 0, liveCertificates: 0 };

/** A provision with the application's next key: 200, with records and a certificate of its own. */
async function provisionWithNewKey(app: Awaited<ReturnType<typeof application>>, uuid: string) {
  const fqdn = `${(await onboardingRow(uuid)).subdomain}.${t.config.baseDomain}`;
  const before = await prisma.certificate.findMany({ where: { fqdn }, select: { serialNumber: true } });
  const key = await app.rotate();
  const again = await rest('POST', '/api/v1/onboarding/provision', {
    key,
    body: { uuid, generate_api_key: true },
  });
  expect(again.status, JSON.stringify(again.body)).toBe(200);
  expect(again.body.metadata).toMatchObject({ dns_configured: true, ssl_configured: true });
  expect(await names(uuid)).toEqual({ dnsRecords: 1, liveCertificates: 1 });
  const live = await prisma.certificate.findFirstOrThrow({ where: { fqdn, revokedAt: null } });
  expect(before.map((c) => c.serialNumber)).not.toContain(live.serialNumber);
}

describe('a provision in flight during a revocation of its key', () => {
  it('held at its commit, after its credentials are written: it answers them first, and the revocation clears them', async () => {
    const app = await application();
    const uuid = await app.start();
    const { provision, revocation } = await holding(
      ['LOCK TABLE audit_log IN SHARE MODE'],
      async (client) => {
        const provision = app.provision(uuid);
        // The commit's audit entry waits: its credentials are written, the key share-locked.
        await expect.poll(() => waiting('%audit_log%'), POLL).toBe(1);
        const revocation = app.revoke();
        // The revocation waits on that key.
        await expect.poll(() => waiting('%application_keys%'), POLL).toBe(1);
        await client.query('COMMIT');
        return { provision: await provision, revocation: await revocation };
      },
    );
    expect(revocation).toBe('ApplicationKeyRevoked');
    expect(provision.status).toBe(200);
    expect(provision.body.api_key).toMatch(/^ak_/);
    const issued = { uuid, apiKey: provision.body.api_key, apiSecret: provision.body.api_secret };
    expect((await status(issued)).status).toBe(401);
    expect(await onboardingRow(uuid)).toMatchObject({
      status: 'activated',
      apiKeyId: null,
      apiKeyHash: null,
    });
    const audit = await prisma.auditLog.findFirstOrThrow({
      where: { action: 'application.key_revoked', targetId: app.appId },
    });
    expect(audit.data).toMatchObject({ revokedApiCredentials: 1 });
  });

  it('held at its rate limit, past its key check: refused (404) once the revocation committed, and nothing done', async () => {
    const app = await application();
    const uuid = await app.start();
    // An uncommitted count of this uuid's provisions: the provision's own count waits on it.
    const count = `INSERT INTO request_counters (scope, key, count, window_started_at)
                   VALUES ('onboarding.provision', '${uuid}', 0, now())`;
    const { provision, revocation } = await holding([count], async (client) => {
      const provision = app.provision(uuid);
      await expect.poll(() => waiting('%request_counters%'), POLL).toBe(1);
      const revocation = await app.revoke();
      await client.query('ROLLBACK');
      return { provision: await provision, revocation };
    });
    expect(revocation).toBe('ApplicationKeyRevoked');
    expect(provision.status).toBe(404);
    expect(provision.body).toMatchObject({ success: false, error: 'not_found' });
    expect(await onboardingRow(uuid)).toMatchObject({
      status: 'pending',
      apiKeyId: null,
      dnsConfigured: false,
      sslConfigured: false,
      provisioningUntil: null,
      provisioningAttempts: 0,
    });
    expect(await prisma.provisioningRun.count({ where: { onboardingId: uuid } })).toBe(0);
  });

  it.each([
    ['DNS', 'dns_records'],
    ['certificate', 'certificates'],
  ])(
    'held at its %s step: refused (404) at its commit, not activated, its record and certificate released, and a later key gets fresh ones',
    async (_step, table) => {
      const app = await application();
      const uuid = await app.start();
      const { provision, revocation } = await holding(
        [`LOCK TABLE ${table} IN SHARE MODE`],
        async (client) => {
          const provision = app.provision(uuid);
          await expect.poll(() => waiting(`%${table}%`), POLL).toBe(1);
          const revocation = await app.revoke();
          await client.query('COMMIT');
          return { provision: await provision, revocation };
        },
      );
      expect(revocation).toBe('ApplicationKeyRevoked');
      expect(provision.status).toBe(404);
      // No activation.
      expect(await onboardingRow(uuid)).toMatchObject({
        status: 'pending',
        apiKeyId: null,
        activatedAt: null,
        provisioningUntil: null,
      });
      expect(
        await prisma.auditLog.count({ where: { action: 'onboarding.provisioned', targetId: uuid } }),
      ).toBe(0);
      // What it published and issued in that request is released: nothing of the application can use it.
      expect(await names(uuid)).toEqual(NONE);
      expect(await onboardingRow(uuid)).toMatchObject({ dnsConfigured: false, sslConfigured: false });
      await provisionWithNewKey(app, uuid);
    },
  );
});

describe('what a revocation leaves of its pending onboardings', () => {
  it('a pending onboarding provisioned in part before the revocation loses its record; an activated one keeps its own', async () => {
    const app = await application();
    const live = await app.provisioned();
    const partial = await app.start();
    t.app.deps.provisioning.injectFault('ssl', 1);
    expect((await app.provision(partial)).status).toBe(500);
    expect(await names(partial)).toEqual({ dnsRecords: 1, liveCertificates: 0 });
    expect(await app.revoke()).toBe('ApplicationKeyRevoked');
    // Released in the background, once the revocation committed (a job queued with it).
    await expect.poll(() => names(partial), POLL).toEqual(NONE);
    expect(await onboardingRow(partial)).toMatchObject({
      status: 'pending',
      dnsConfigured: false,
      sslConfigured: false,
      infrastructureStatus: 'pending',
    });
    expect(await names(live.uuid)).toEqual({ dnsRecords: 1, liveCertificates: 1 });
    await provisionWithNewKey(app, partial);
    expect(await names(live.uuid)).toEqual({ dnsRecords: 1, liveCertificates: 1 });
  });

  it('the release finds a live key (a new key came first): a pending onboarding keeps its record for its next provision', async () => {
    const app = await application();
    const partial = await app.start();
    t.app.deps.provisioning.injectFault('ssl', 1);
    expect((await app.provision(partial)).status).toBe(500);
    await t.app.deps.onboarding.releaseUnkeyed(app.appId);
    expect(await names(partial)).toEqual({ dnsRecords: 1, liveCertificates: 0 });
    expect(await onboardingRow(partial)).toMatchObject({
      dnsConfigured: true,
      infrastructureStatus: 'partial',
    });
  });
});

describe('a completion in flight during a revocation of its key', () => {
  it('held at its row lock, past its key check: it completes first and the revocation waits, never after the revocation returned', async () => {
    const app = await application();
    const uuid = await app.start();
    // Provisioned without credentials: the revocation has no credential of this row to clear.
    const provisioned = await rest('POST', '/api/v1/onboarding/provision', {
      key: app.key,
      body: { uuid, generate_api_key: false },
    });
    expect(provisioned.status).toBe(200);
    const complete = () =>
      rest('POST', `/api/v1/onboarding/${uuid}/complete`, {
        key: app.key,
        body: { tenant_id: 'tenant-held' },
      });
    const order: string[] = [];
    const { completion, revocation } = await holding(
      [`SELECT 1 FROM onboardings WHERE id = '${uuid}' FOR UPDATE`],
      async (client) => {
        const completion = complete().then((answer) => {
          order.push('completion');
          return answer;
        });
        await expect.poll(() => waiting('%onboardings%'), POLL).toBe(1);
        const revocation = app.revoke().then((answer) => {
          order.push('revocation');
          return answer;
        });
        // The revocation either waits on the key the completion holds, or has returned.
        await expect
          .poll(async () => order.includes('revocation') || (await waiting('%application_keys%')) > 0, POLL)
          .toBe(true);
        await client.query('COMMIT');
        return { completion: await completion, revocation: await revocation };
      },
    );
    expect(revocation).toBe('ApplicationKeyRevoked');
    expect(order).toEqual(['completion', 'revocation']);
    expect(completion.status, JSON.stringify(completion.body)).toBe(200);
    expect((await onboardingRow(uuid)).status).toBe('completed');
    expect((await complete()).status).toBe(401);
  });
});

describe('a burst racing one revocation', () => {
  it('16 provision, status and complete calls: none answers 500, and after the revocation returns every old key and credential is refused', async () => {
    // The revocation sent later each round, to land before, among and after the calls' commits;
    // the last rounds send it when the first provision answered, the others still running.
    for (const when of [0, 100, 200, 'first', 'first'] as const) {
      const app = await application();
      const pending = await Promise.all(Array.from({ length: 6 }, () => app.start()));
      const tenants = await Promise.all(Array.from({ length: 5 }, () => app.provisioned()));
      const completes = tenants;
      const calls: Promise<{ kind: string; uuid: string; answer: RestResponse }>[] = [
        // The provisions spread over 150 ms, so that the revocation finds them at different steps.
        ...pending.map((uuid, i) =>
          new Promise((resolve) => setTimeout(resolve, i * 30))
            .then(() => app.provision(uuid))
            .then((answer) => ({ kind: 'provision', uuid, answer })),
        ),
        ...tenants.map((tenant) =>
          status(tenant).then((answer) => ({ kind: 'status', uuid: tenant.uuid, answer })),
        ),
        ...completes.map((tenant) =>
          rest('POST', `/api/v1/onboarding/${tenant.uuid}/complete`, {
            key: app.key,
            body: { tenant_id: `tenant-${tenant.uuid}` },
          }).then((answer) => ({ kind: 'complete', uuid: tenant.uuid, answer })),
        ),
      ];
      expect(calls).toHaveLength(16);
      await (when === 'first'
        ? Promise.race(calls.slice(0, pending.length))
        : new Promise((resolve) => setTimeout(resolve, when)));
      const revoked = await app.revoke();
      expect(revoked).toBe('ApplicationKeyRevoked');
      const answers = await Promise.all(calls);
      for (const { kind, answer } of answers)
        expect([200, 401, 404], `${kind}: ${JSON.stringify(answer.body)}`).toContain(answer.status);

      // Whatever answered, no onboarding of the application holds credentials.
      expect(
        await prisma.onboarding.count({ where: { applicationId: app.appId, NOT: { apiKeyId: null } } }),
      ).toBe(0);
      // A provision answered 200 with credentials (it committed first, and they were cleared) or
      // was refused and activated nothing.
      for (const { uuid, answer } of answers.filter((a) => a.kind === 'provision')) {
        const row = await onboardingRow(uuid);
        if (answer.status === 200) {
          expect(answer.body.api_key).toMatch(/^ak_/);
          expect(row.status).toBe('activated');
        } else {
          expect([401, 404]).toContain(answer.status);
          expect(row).toMatchObject({ status: 'pending', activatedAt: null, provisioningUntil: null });
        }
      }

      // Every call after the revocation, with the old master key or any credentials handed out.
      const handedOut = answers
        .filter((a) => a.kind === 'provision' && typeof a.answer.body.api_key === 'string')
        .map((a) => ({ uuid: a.uuid, apiKey: a.answer.body.api_key, apiSecret: a.answer.body.api_secret }));
      const after = await Promise.all([
        ...[...tenants, ...handedOut].map(status),
        ...pending.map((uuid) => app.provision(uuid)),
        ...pending.map((uuid) => rest('GET', `/api/v1/onboarding/status/${uuid}`, { key: app.key })),
        ...completes.map((tenant) =>
          rest('POST', `/api/v1/onboarding/${tenant.uuid}/complete`, {
            key: app.key,
            body: { tenant_id: `tenant-${tenant.uuid}` },
          }),
        ),
      ]);
      expect(after.map((answer) => answer.status)).toEqual(after.map(() => 401));
      // No pending onboarding of the revoked key keeps a record or a live certificate.
      for (const uuid of pending) {
        if ((await onboardingRow(uuid)).status === 'pending')
          await expect.poll(() => names(uuid), POLL).toEqual(NONE);
      }
    }
  });
});
