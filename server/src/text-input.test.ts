/** Control characters in any text input: a typed validation error, never a 500 (or a DB error). */
import { describe, expect, it } from 'vitest';
import { startTestApp, wsQuery } from '../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../test/registration-flow.js';
import { hashPassword } from './modules/auth/passwords.js';

const ZERO = '00000000-0000-4000-8000-000000000000';
const PASSWORD = 'a sturdy passphrase 42';
const SIGN_IN = `mutation ($e: String, $p: String!) { signInWithPassword(email: $e, password: $p) {
  __typename ... on ValidationError { code fields { path message } } ... on Error { code } } }`;

describe('control characters in inputs', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const email = `text-input-${Date.now()}@example.com`;
  await prisma.user.create({
    data: {
      email,
      passwordHash: await hashPassword(PASSWORD),
      firstName: 'T',
      lastName: 'I',
      role: 'STAFF',
      emailVerifiedAt: new Date(),
    },
  });
  const admin = await t.superAdmin();

  it.each([
    ['NUL', '\u0000'],
    ['BEL', '\u0007'],
    ['ESC', '\u001b'],
    ['DEL', '\u007f'],
    ['C1 NEL', '\u0085'],
    ['line feed', '\n'],
    ['a lone surrogate', '\ud800'],
  ])('refuses %s in a variable as a ValidationError of that argument', async (_name, character) => {
    const byEmail = await t.gql(SIGN_IN, { e: `a${character}b@example.com`, p: PASSWORD });
    expect(byEmail.status).toBe(200);
    expect(byEmail.body).toEqual({
      data: {
        signInWithPassword: {
          __typename: 'ValidationError',
          code: 'VALIDATION_FAILED',
          fields: [{ path: ['email'], message: 'Must not contain control characters' }],
        },
      },
    });
    const byPassword = await t.gql(SIGN_IN, { e: email, p: `${PASSWORD}${character}` });
    expect(byPassword.body.data).toMatchObject({
      signInWithPassword: { __typename: 'ValidationError', fields: [{ path: ['password'] }] },
    });
  });

  it('refuses them written inline, in mutations with an errors union and in input objects', async () => {
    const inline = await t.gql(
      `mutation { signInWithPassword(email: "${email}\\u0000", password: "x") { __typename } }`,
    );
    expect(inline.body.data).toEqual({ signInWithPassword: { __typename: 'ValidationError' } });
    const code = await t.gql(
      'mutation ($e: String!) { requestLoginCode(email: $e) { __typename ... on ValidationError { fields { path } } } }',
      { e: 'x\u0000@example.com' },
    );
    expect(code.body.data).toEqual({
      requestLoginCode: { __typename: 'ValidationError', fields: [{ path: ['email'] }] },
    });
    const register = await t.gql(
      `mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) {
        __typename ... on ValidationError { fields { path } } } }`,
      {
        input: {
          clinicName: 'Clinique\u0000 du Lac',
          country: 'FR',
          adminEmail: 'nul-register@example.com',
          adminPassword: PASSWORD,
          adminFirstName: 'N',
          adminLastName: 'U',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(register.body.data).toEqual({
      registerClinic: { __typename: 'ValidationError', fields: [{ path: ['input', 'clinicName'] }] },
    });
    expect(await prisma.user.count({ where: { email: 'nul-register@example.com' } })).toBe(0);
  });

  it('answers fields without an error union with extensions.code VALIDATION_FAILED', async () => {
    const query = await t.gql('query ($id: ID!) { clinic(id: $id) { id } }', { id: `${ZERO}\u0000` }, admin);
    expect(query.status).toBe(200);
    expect(query.body.errors?.[0]).toMatchObject({
      message: 'Must not contain control characters',
      extensions: { code: 'VALIDATION_FAILED', fields: [{ path: ['id'] }] },
    });
    const ws = await wsQuery(
      t.ws({ connectionParams: admin }),
      `{ devMailbox(to: "a\\u0000@example.com") { id } }`,
    );
    expect(ws.errors?.[0]?.extensions?.code).toBe('VALIDATION_FAILED');
  });

  it('checks JSON values and keys, where tab and line breaks are text', async () => {
    const issued = await t.app.deps.applications.register('Text input', { userId: null, ip: null });
    const complete = (metadata: unknown) =>
      t.gql(
        `mutation ($m: JSON) { completeOnboarding(uuid: "${ZERO}", tenantId: "t", metadata: $m) {
          __typename ... on ValidationError { fields { path } } } }`,
        { m: metadata },
        { 'X-Master-Key': issued.masterKey },
      );
    expect((await complete({ notes: ['ok', 'bad\u0000'] })).body.data).toEqual({
      completeOnboarding: { __typename: 'ValidationError', fields: [{ path: ['metadata', 'notes', '1'] }] },
    });
    expect((await complete({ 'k\u0001': 1 })).body.data).toEqual({
      completeOnboarding: { __typename: 'ValidationError', fields: [{ path: ['metadata', 'k\u0001'] }] },
    });
    expect((await complete({ notes: 'line one\n\tline two\r\n' })).body.data).toEqual({
      completeOnboarding: { __typename: 'NotFoundError' },
    });
  });

  it('refuses them in REST bodies with 422, and bytes that are not UTF-8 with 400', async () => {
    const issued = await t.app.deps.applications.register('Text input REST', { userId: null, ip: null });
    const start = (body: string | Blob) =>
      fetch(`${t.url}/api/v1/onboarding/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-master-key': issued.masterKey },
        body,
      });
    const nul = await start(JSON.stringify({ email: 'rest@example.com', organization_name: 'Lac\u0000' }));
    expect(nul.status).toBe(422);
    expect(await nul.json()).toMatchObject({
      success: false,
      error: 'validation_failed',
      errors: [{ field: 'organization_name', message: 'Must not contain control characters' }],
    });
    const latin1 = await start(
      new Blob([Buffer.from('{"email":"rest@example.com","organization_name":"Caf\xe9"}', 'latin1')]),
    );
    expect(latin1.status).toBe(400);
    expect(await latin1.json()).toMatchObject({ success: false, error: 'invalid_json' });
    expect(await prisma.onboarding.count({ where: { email: 'rest@example.com' } })).toBe(0);
  });

  it('still signs the user in afterwards', async () => {
    const ok = await t.gql(SIGN_IN, { e: email, p: PASSWORD });
    expect(ok.body.data).toEqual({ signInWithPassword: { __typename: 'AuthSession' } });
  });
});
