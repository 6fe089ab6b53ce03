/**
 * Bad input never gives a 500: malformed percent-encoding in REST paths, JSON nested thousands of
 * levels deep (REST bodies and GraphQL JSON variables), out-of-range and malformed GraphQL
 * arguments and cursors. Each answers a 4xx with the REST error shape, or a typed GraphQL error.
 * A small fuzz pass over every REST route and the paging arguments of GraphQL comes last.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';

const t = await startTestApp({
  CLINIC_POOL_SIZE: '0',
  CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  ONBOARDING_IP_LIMIT: '100000/1h',
  ONBOARDING_STATUS_LIMIT: '100000/1h',
  ONBOARDING_START_LIMIT: '100000/1h',
});

/** `{"a":{"a":…1…}}`, built as text: JSON.stringify itself would overflow the stack. */
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const nestedArray = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

const admin = await t.superAdmin();
const registered = await fetch(`${t.url}/api/v1/applications/register`, {
  method: 'POST',
  headers: { ...admin, 'content-type': 'application/json' },
  body: JSON.stringify({ app_name: 'Bad input' }),
});
const masterKey = ((await registered.json()) as { master_key: string }).master_key;
const started = await fetch(`${t.url}/api/v1/onboarding/start`, {
  method: 'POST',
  headers: { 'x-master-key': masterKey, 'content-type': 'application/json' },
  body: JSON.stringify({ email: 'bad-input@example.com' }),
});
const uuid = ((await started.json()) as { uuid: string }).uuid;

async function rest(
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = { 'x-master-key': masterKey },
) {
  const response = await fetch(`${t.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  let json: { success?: boolean; error?: string; message?: string } | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, json, text };
}

/** GraphQL over HTTP with a raw JSON body (deep variables cannot go through JSON.stringify). */
async function gqlRaw(body: string, headers: Record<string, string> = admin) {
  const response = await fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    text,
    body: JSON.parse(text) as {
      data?: unknown;
      errors?: { message: string; extensions?: { code?: string; fields?: unknown } }[];
    },
  };
}

const gql = (
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = admin,
) => gqlRaw(JSON.stringify({ query, variables }), headers);

describe('REST: malformed paths and bodies', () => {
  it('GET /api/v1/onboarding/status/%E0%A4%A (broken percent-encoding) is a 400 in the REST shape', async () => {
    const answer = await rest('GET', '/api/v1/onboarding/status/%E0%A4%A');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ success: false, error: 'invalid_uuid' });
  });

  it('the complete route and the admin repair route refuse broken percent-encoding with a 400', async () => {
    const complete = await rest('POST', '/api/v1/onboarding/%E0%A4%A/complete', '{}');
    expect(complete.status).toBe(400);
    expect(complete.json).toMatchObject({ success: false, error: 'invalid_uuid' });
    const repair = await rest('POST', '/api/v1/admin/clinics/%E0%A4%A/repair', '{}', admin);
    expect(repair.status).toBe(400);
    expect(repair.json).toMatchObject({ error: 'validation_failed' });
  });

  it('onboarding metadata nested 5,000 levels is a 400, with or without an Idempotency-Key', async () => {
    const body = `{"tenant_id":"tenant-1","metadata":${nestedObject(5000)}}`;
    for (const headers of [{}, { 'idempotency-key': 'deep-1' }] as Record<string, string>[]) {
      const answer = await rest('POST', `/api/v1/onboarding/${uuid}/complete`, body, {
        'x-master-key': masterKey,
        ...headers,
      });
      expect(answer.status).toBe(400);
      expect(answer.json).toMatchObject({ success: false, error: 'invalid_json' });
    }
    // Nothing was completed by the refused requests.
    const status = await rest('GET', `/api/v1/onboarding/status/${uuid}`);
    expect(status.json).toMatchObject({ onboarding_status: 'pending' });
  });

  it('deep arrays in any field of any POST route are a 400', async () => {
    for (const [path, body] of [
      ['/api/v1/onboarding/start', `{"email":"a@example.com","organization_name":${nestedArray(5000)}}`],
      ['/api/v1/onboarding/provision', `{"uuid":${nestedArray(5000)}}`],
      [`/api/v1/onboarding/${uuid}/complete`, `{"tenant_id":"t","metadata":${nestedArray(100_000)}}`],
    ] as const) {
      const answer = await rest('POST', path, body, { 'x-master-key': masterKey, 'idempotency-key': path });
      expect(answer.status, path).toBe(400);
      expect(answer.json, path).toMatchObject({ success: false, error: 'invalid_json' });
    }
    const register = await rest(
      'POST',
      '/api/v1/applications/register',
      `{"app_name":${nestedObject(3000)}}`,
      admin,
    );
    expect(register.status).toBe(400);
  });

  it('metadata a few levels deep is still accepted', async () => {
    const answer = await rest(
      'POST',
      `/api/v1/onboarding/${uuid}/complete`,
      JSON.stringify({ tenant_id: 'tenant-ok', metadata: { plan: { tier: { name: ['pro'] } } } }),
    );
    // 409: complete before provision (the documented order); the point is that it was read.
    expect(answer.status).toBe(409);
  });
});

describe('GraphQL: arguments out of range or malformed are typed errors', () => {
  it('provisioningRuns(first: 1000) is VALIDATION_FAILED, not INTERNAL_SERVER_ERROR', async () => {
    const { body } = await gql('{ provisioningRuns(first: 1000) { id } }');
    expect(body.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
    expect(body.errors?.[0]?.message).toMatch(/200/);
    expect(body.errors?.[0]?.extensions?.fields).toEqual([{ path: ['first'], message: expect.any(String) }]);
    const ok = await gql('{ provisioningRuns(first: 200) { id } }');
    expect(ok.body.errors).toBeUndefined();
  });

  it('a JSON variable nested 5,000 levels is refused as bad input', async () => {
    const query = `mutation($m: JSON) { completeOnboarding(uuid: \\"${uuid}\\", tenantId: \\"t\\", metadata: $m) { __typename } }`;
    const { status, body, text } = await gqlRaw(
      `{"query":"${query}","variables":{"m":${nestedObject(5000)}}}`,
      { 'x-master-key': masterKey },
    );
    expect(text).not.toContain('INTERNAL_SERVER_ERROR');
    expect(status).toBe(400);
    expect(body.errors?.[0]?.message).toMatch(/nested/);
  });

  it('paging arguments and forged cursors of connections are VALIDATION_FAILED', async () => {
    for (const query of [
      '{ clinics(first: -5) { edges { node { id } } } }',
      '{ clinics(after: "garbage") { edges { node { id } } } }',
      // A well-formed cursor whose value is not a clinic id (GPC:S:nope).
      `{ clinics(after: "${Buffer.from('GPC:S:nope').toString('base64')}") { edges { node { id } } } }`,
      '{ auditLog(after: "%%%") { edges { node { id } } } }',
      // A well-formed cursor whose number is no audit entry id (1.2e28 does not fit a bigint).
      `{ auditLog(after: "${Buffer.from('GPC:N:12345678901234567890123456789').toString('base64')}") { edges { node { id } } } }`,
      `{ auditLog(before: "${Buffer.from('GPC:N:1.5').toString('base64')}", last: 2) { edges { node { id } } } }`,
      '{ clinic(id: "not-a-uuid") { id } }',
      '{ provisioningRuns(clinicId: "x") { id } }',
      'mutation { injectFault(step: dns, times: 1000) { pending } }',
    ]) {
      const { body, text } = await gql(query);
      expect(text, query).not.toContain('INTERNAL_SERVER_ERROR');
      expect(body.errors?.[0]?.extensions?.code, query).toBe('VALIDATION_FAILED');
    }
  });
});

describe('a little fuzzing: no input gives a 500', () => {
  const weird = [
    '',
    ' ',
    '%',
    '%E0%A4%A',
    '%ZZ',
    '..%2F..%2Fetc%2Fpasswd',
    '%F0%9F%98%80',
    'x'.repeat(5000),
    '00000000-0000-0000-0000-000000000000',
    `${'A'.repeat(36)}`,
  ];

  it('REST routes with odd path parameters, bodies and headers', async () => {
    const bodies = [
      '',
      'null',
      '[]',
      '"text"',
      '{',
      '{"email":1}',
      '{"email":{"$gt":""}}',
      '{"email":"a@example.com","organization_name":123}',
      '{"uuid":"not-a-uuid","generate_api_key":"yes"}',
      '{"tenant_id":{"a":1},"metadata":"x"}',
      '{"__proto__":{"polluted":true},"email":"a@example.com"}',
      `{"email":"${'a'.repeat(300)}@example.com"}`,
      '{"app_name":""}',
    ];
    const failures: string[] = [];
    const check = (what: string, answer: { status: number; json?: unknown; text: string }) => {
      if (answer.status >= 500 || answer.json === undefined)
        failures.push(`${what} → ${answer.status} ${answer.text.slice(0, 120)}`);
    };
    for (const param of weird) {
      check(`status ${param}`, await rest('GET', `/api/v1/onboarding/status/${param}`));
      check(`complete ${param}`, await rest('POST', `/api/v1/onboarding/${param}/complete`, '{}'));
      check(`repair ${param}`, await rest('POST', `/api/v1/admin/clinics/${param}/repair`, '{}', admin));
    }
    for (const body of bodies) {
      for (const path of [
        '/api/v1/onboarding/start',
        '/api/v1/onboarding/provision',
        `/api/v1/onboarding/${uuid}/complete`,
      ]) {
        check(`${path} ${body.slice(0, 40)}`, await rest('POST', path, body));
      }
      check(
        `register ${body.slice(0, 40)}`,
        await rest('POST', '/api/v1/applications/register', body, admin),
      );
    }
    for (const key of ['', ' ', 'é', 'x'.repeat(300), 'a\tb']) {
      check(
        `idempotency-key ${key.slice(0, 10)}`,
        await rest('POST', '/api/v1/onboarding/start', '{"email":"a@example.com"}', {
          'x-master-key': masterKey,
          'idempotency-key': encodeURIComponent(key),
        }),
      );
    }
    for (const key of ['', 'mk_', 'mk_x_y', `mk_${'0'.repeat(16)}_${'a'.repeat(43)}`, 'x'.repeat(4000)]) {
      check(
        `master key ${key.slice(0, 10)}`,
        await rest('GET', `/api/v1/onboarding/status/${uuid}`, undefined, { 'x-master-key': key }),
      );
    }
    expect(failures).toEqual([]);
  });

  it('GraphQL paging and id arguments', async () => {
    const failures: string[] = [];
    const queries = [
      ...[-1, 0, 1, 201, 2 ** 31 - 1].map((n) => `{ provisioningRuns(first: ${n}) { id } }`),
      ...[-1, 0, 100_000].map((n) => `{ clinics(first: ${n}) { edges { node { id } } } }`),
      ...[-1, 0, 100_000].map((n) => `{ auditLog(first: ${n}) { edges { node { id } } } }`),
      ...[-1, 0, 100_000].map((n) => `{ applicationOnboardings(first: ${n}) { id } }`),
      '{ clinics(first: 1, last: 1) { edges { node { id } } } }',
      '{ clinics(last: 1) { edges { node { id } } } }',
      '{ auditLog(after: "", before: "") { edges { node { id } } } }',
      ...weird.map((id) => `{ clinic(id: ${JSON.stringify(id)}) { id } }`),
      ...weird.map((id) => `mutation { repairClinic(clinicId: ${JSON.stringify(id)}) { __typename } }`),
      ...weird.map(
        (id) => `mutation { rotateApplicationKey(applicationId: ${JSON.stringify(id)}) { __typename } }`,
      ),
      ...weird.map((id) => `{ applicationOnboardings(applicationId: ${JSON.stringify(id)}) { id } }`),
      `{ auditLog(action: ${JSON.stringify('x'.repeat(10_000))}) { edges { node { id } } } }`,
      `mutation { verifyEmail(token: ${JSON.stringify('%E0%A4%A')}) { __typename } }`,
      `mutation { resendVerificationEmail(email: ${JSON.stringify('x'.repeat(300))}) { __typename } }`,
    ];
    for (const query of queries) {
      const { status, text } = await gql(query);
      if (status >= 500 || text.includes('INTERNAL_SERVER_ERROR'))
        failures.push(`${query.slice(0, 90)} → ${status} ${text.slice(0, 160)}`);
    }
    const literal = `mutation { completeOnboarding(uuid: "${uuid}", tenantId: "t", metadata: ${'{a:'.repeat(900)}1${'}'.repeat(900)}) { __typename } }`;
    const deep = await gql(literal, {}, { 'x-master-key': masterKey });
    if (deep.status >= 500 || deep.text.includes('INTERNAL_SERVER_ERROR'))
      failures.push(`deep literal → ${deep.status} ${deep.text.slice(0, 160)}`);
    expect(failures).toEqual([]);
  });
});
