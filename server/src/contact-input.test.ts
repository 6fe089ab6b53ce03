/**
 * Every sign-in and registration entry that takes an e-mail or a phone checks its format first:
 * a malformed one is a ValidationError of that argument (or, on the dev tools' queries, a GraphQL
 * error with `extensions.code` VALIDATION_FAILED), never the answer a real address would get.
 * A format error reveals nothing about accounts, so it need not hide behind the enumeration-safe
 * answers (README, Security).
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../test/registration-flow.js';

const ZERO = '00000000-0000-4000-8000-000000000000';
const NOT_EMAILS = [
  'not-an-email',
  'marie@',
  '@example.com',
  'marie example@example.com',
  'marie@exa\u0000mple.com',
];

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
const admin = await t.superAdmin();

const RESULT = '__typename ... on ValidationError { code fields { path } }';

/** The `__typename` and field paths a mutation answered. */
async function answer(query: string, variables: Record<string, unknown>, headers = {}) {
  const { status, body } = await t.gql<Record<string, { __typename: string; fields?: { path: string[] }[] }>>(
    query,
    variables,
    headers,
  );
  expect(status).toBe(200);
  expect(body.errors).toBeUndefined();
  const [result] = Object.values(body.data ?? {});
  return { typename: result?.__typename, paths: result?.fields?.map((field) => field.path.join('.')) };
}

describe('e-mail and phone formats', () => {
  it.each(NOT_EMAILS)('requestLoginCode refuses %j as VALIDATION_FAILED on email', async (email) => {
    expect(
      await answer(`mutation ($e: String!) { requestLoginCode(email: $e) { ${RESULT} } }`, { e: email }),
    ).toEqual({
      typename: 'ValidationError',
      paths: ['email'],
    });
  });

  it('requestLoginCode still answers LoginCodeRequested for any well-formed address', async () => {
    const query = `mutation ($e: String!) { requestLoginCode(email: $e) { ${RESULT} } }`;
    expect(await answer(query, { e: `  Nobody-${Date.now()}@Example.com ` })).toEqual({
      typename: 'LoginCodeRequested',
      paths: undefined,
    });
  });

  it('signInWithCode, signInWithPassword and resendVerificationEmail refuse a malformed e-mail', async () => {
    const e = 'not-an-email';
    expect(
      await answer(`mutation ($e: String!) { signInWithCode(email: $e, code: "123456") { ${RESULT} } }`, {
        e,
      }),
    ).toEqual({ typename: 'ValidationError', paths: ['email'] });
    expect(
      await answer(
        `mutation ($e: String!) { signInWithPassword(email: $e, password: "whatever") { ${RESULT} } }`,
        {
          e,
        },
      ),
    ).toEqual({ typename: 'ValidationError', paths: ['email'] });
    expect(
      await answer(`mutation ($e: String!) { resendVerificationEmail(email: $e) { ${RESULT} } }`, { e }),
    ).toEqual({ typename: 'ValidationError', paths: ['email'] });
  });

  it('registration, clients, invitations and activation refuse a malformed e-mail or phone', async () => {
    const register = await answer(
      `mutation ($i: RegisterClinicInput!) { registerClinic(input: $i) { ${RESULT} } }`,
      {
        i: {
          clinicName: 'Clinique du Format',
          country: 'FR',
          adminEmail: 'not-an-email',
          adminPassword: 'a sturdy passphrase 42',
          adminFirstName: 'Marie',
          adminLastName: 'Curie',
          acceptedDocuments: CURRENT_ACCEPTANCES,
          adminPhone: 'marie@example.com',
        },
      },
    );
    expect(register).toEqual({
      typename: 'ValidationError',
      paths: ['input.adminEmail', 'input.adminPhone'],
    });
    expect(
      await answer(
        `mutation ($i: AddClientInput!) { addClient(input: $i) { ${RESULT} } }`,
        { i: { clinicId: ZERO, kind: 'COMPANY', email: 'not-an-email', legalName: 'Acme' } },
        admin,
      ),
    ).toEqual({ typename: 'ValidationError', paths: ['input.email'] });
    expect(
      await answer(
        `mutation ($i: InviteMemberInput!) { inviteMember(input: $i) { ${RESULT} } }`,
        {
          i: {
            clinicId: ZERO,
            firstName: 'A',
            lastName: 'B',
            role: 'STAFF',
            channel: 'SMS',
            phone: 'a@b.fr',
          },
        },
        admin,
      ),
    ).toEqual({ typename: 'ValidationError', paths: ['input.phone'] });
    expect(
      await answer(`mutation ($i: ActivateAccountInput!) { activateAccount(input: $i) { ${RESULT} } }`, {
        i: { email: 'not-an-email', code: '123456', password: 'a sturdy passphrase 42' },
      }),
    ).toEqual({ typename: 'ValidationError', paths: ['input.email'] });
  });

  it('the dev mailbox refuses a non-e-mail and the SMS outbox a non-phone, as VALIDATION_FAILED', async () => {
    const sms = await t.gql(
      'query ($to: String!) { devSmsOutbox(to: $to) { text } }',
      { to: 'marie@example.com' },
      admin,
    );
    expect(sms.status).toBe(200);
    expect(sms.body.data).toBeNull();
    expect(sms.body.errors?.[0]).toMatchObject({
      message: 'Phone must be in international format, e.g. +33612345678',
      extensions: { code: 'VALIDATION_FAILED', fields: [{ path: ['to'] }] },
    });
    const mail = await t.gql(
      'query ($to: String!) { devMailbox(to: $to) { id } }',
      { to: '+33612345678' },
      admin,
    );
    expect(mail.body.errors?.[0]).toMatchObject({
      message: 'Enter a valid e-mail address',
      extensions: { code: 'VALIDATION_FAILED', fields: [{ path: ['to'] }] },
    });
  });

  it('the outboxes still answer for well-formed recipients, written as people write them', async () => {
    await t.app.deps.sms.send('+33612345678', 'Onramp: hello');
    const sms = await t.gql(
      'query ($to: String!) { devSmsOutbox(to: $to) { text } }',
      { to: '+33 6 12-34.56 78' },
      admin,
    );
    expect(sms.body).toEqual({ data: { devSmsOutbox: [{ text: 'Onramp: hello' }] } });
    const mail = await t.gql(
      'query ($to: String!) { devMailbox(to: $to) { id } }',
      { to: ' Nobody@Example.com' },
      admin,
    );
    expect(mail.body).toEqual({ data: { devMailbox: [] } });
  });
});
