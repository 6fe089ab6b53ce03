import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { afterFile, startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, createClinic, verifyAndSignIn } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';

/** A fake third-party SMS gateway: the only thing faked here. */
async function fakeGateway() {
  const received: { to: string; text: string }[] = [];
  let mode: 'ok' | 'error' | 'hang' | 'down' = 'ok';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (mode === 'down') return void res.writeHead(503).end();
    if (req.method === 'GET') return void res.writeHead(200).end('up');
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      if (mode === 'hang') return; // never answers: the client's timeout must fire
      if (mode === 'error') return void res.writeHead(500).end();
      received.push(JSON.parse(body));
      res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  afterFile(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/sms`,
    received,
    set: (next: typeof mode) => {
      mode = next;
    },
  };
}

const INVITE = `mutation ($input: InviteMemberInput!) { inviteMember(input: $input) {
  __typename ... on InviteMemberSuccess { member { id phone email role } } ... on Error { code message } ... on ValidationError { fields { path message } } } }`;
const ACTIVATE = `mutation ($input: ActivateAccountInput!) { activateAccount(input: $input) {
  __typename ... on AuthSession { accessToken user { id } } ... on Error { code } } }`;

describe('atomic invitations', async () => {
  const gateway = await fakeGateway();
  const sink = await startSmtpSink();
  afterAll(() => sink.stop());
  const t = await startTestApp({
    SMS_GATEWAY_URL: gateway.url,
    SMTP_URL: sink.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = t.app.deps.db;

  const { clinicId, admin } = await createClinic(t, { clinicName: 'Invites', country: 'FR' });
  const adminEmail = admin.email;
  const headers = { authorization: `Bearer ${await verifyAndSignIn(t, sink, admin)}` };
  const invite = async (input: Record<string, unknown>, as: Record<string, string> = headers) =>
    (
      await t.gql<{ inviteMember: Record<string, unknown> }>(
        INVITE,
        { input: { clinicId, firstName: 'Mia', lastName: 'Wong', role: 'STAFF', ...input } },
        as,
      )
    ).body;
  /** What an invitation writes: all of it exists only if the message was accepted. */
  const counts = async () => ({
    users: await prisma.user.count(),
    codes: await prisma.activationCode.count(),
    audited: await prisma.auditLog.count({ where: { action: 'member.invited' } }),
  });

  it('invites by SMS only once the gateway accepted it, then activates with the code', async () => {
    gateway.set('ok');
    const result = await invite({ channel: 'SMS', phone: '+33 6 11 22 33 44' });
    expect(result.data?.inviteMember).toMatchObject({
      __typename: 'InviteMemberSuccess',
      member: { phone: '+33611223344', email: null, role: 'STAFF' },
    });
    const sms = gateway.received.at(-1);
    expect(sms?.to).toBe('+33611223344');
    const code = /(\d{6})/.exec(sms?.text ?? '')?.[1];
    expect((await prisma.activationCode.findFirstOrThrow()).codeHmac).not.toContain(code);

    const activated = await t.gql<{ activateAccount: { __typename: string; accessToken?: string } }>(
      ACTIVATE,
      {
        input: {
          phone: '+33611223344',
          code,
          password: 'another sturdy passphrase',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(activated.body.data?.activateAccount.__typename).toBe('AuthSession');
    const again = await t.gql(ACTIVATE, {
      input: {
        phone: '+33611223344',
        code,
        password: 'another sturdy passphrase',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    expect(again.body.data).toEqual({
      activateAccount: { __typename: 'InvalidCodeError', code: 'INVALID_CODE' },
    });

    // Without an e-mail, the member signs in later with the activated phone (any usual notation).
    const PHONE_SIGN_IN =
      'mutation ($p: String, $e: String, $pw: String!) { signInWithPassword(phone: $p, email: $e, password: $pw) { __typename ... on AuthSession { user { role } } ... on ValidationError { fields { path } } } }';
    const byPhone = await t.gql(PHONE_SIGN_IN, { p: '+33 6 11 22 33 44', pw: 'another sturdy passphrase' });
    expect(byPhone.body.data).toEqual({
      signInWithPassword: { __typename: 'AuthSession', user: { role: 'STAFF' } },
    });
    const wrong = await t.gql(PHONE_SIGN_IN, { p: '+33611223344', pw: 'not the passphrase' });
    expect(wrong.body.data).toEqual({ signInWithPassword: { __typename: 'InvalidCredentialsError' } });
    const both = await t.gql(PHONE_SIGN_IN, { p: '+33611223344', e: 'x@example.com', pw: 'whatever' });
    const neither = await t.gql(PHONE_SIGN_IN, { pw: 'whatever' });
    const badPhone = await t.gql(PHONE_SIGN_IN, { p: '0611', pw: 'whatever' });
    for (const answer of [both, neither])
      expect(answer.body.data).toEqual({
        signInWithPassword: { __typename: 'ValidationError', fields: [{ path: ['email'] }] },
      });
    expect(badPhone.body.data).toEqual({
      signInWithPassword: { __typename: 'ValidationError', fields: [{ path: ['phone'] }] },
    });
  });

  it.each([
    ['answers 500', 'error'],
    ['is down', 'down'],
    ['times out', 'hang'],
  ] as const)(
    'keeps nothing when the SMS gateway %s',
    async (_label, mode) => {
      const before = await counts();
      gateway.set(mode);
      const result = await invite({ channel: 'SMS', phone: '+33699887766' });
      expect(result.data?.inviteMember).toMatchObject({
        __typename: 'DeliveryFailedError',
        code: 'DELIVERY_FAILED',
      });
      expect(await counts()).toEqual(before);
      gateway.set('ok');
    },
    20_000,
  );

  it('invites by e-mail through SMTP, keeps nothing when the server refuses, and activates by e-mail', async () => {
    const before = await counts();
    sink.failNext(1);
    const refused = await invite({ channel: 'EMAIL', email: 'refused@example.com' });
    expect(refused.data?.inviteMember).toMatchObject({ __typename: 'DeliveryFailedError' });
    expect(await counts()).toEqual(before);

    const ok = await invite({ channel: 'EMAIL', email: 'Staff@Example.com' });
    expect(ok.data?.inviteMember).toMatchObject({
      __typename: 'InviteMemberSuccess',
      member: { email: 'staff@example.com' },
    });
    expect(await counts()).toEqual({
      users: before.users + 1,
      codes: before.codes + 1,
      audited: before.audited + 1,
    });
    const mail = await sink.waitFor((m) => (m.subject ?? '').includes('activation code'));
    const code = /(\d{6})/.exec(mail.text ?? '')?.[1];
    // Without the acceptances: refused on that field, and the code still works afterwards.
    const unaccepted = await t.gql<{ activateAccount: { __typename: string } }>(ACTIVATE, {
      input: { email: 'staff@example.com', code, password: 'another sturdy passphrase' },
    });
    expect(unaccepted.body.data?.activateAccount.__typename).toBe('ValidationError');
    const activated = await t.gql<{ activateAccount: { __typename: string } }>(ACTIVATE, {
      input: {
        email: 'staff@example.com',
        code,
        password: 'another sturdy passphrase',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    expect(activated.body.data?.activateAccount.__typename).toBe('AuthSession');
    const staff = await prisma.user.findUniqueOrThrow({ where: { email: 'staff@example.com' } });
    expect(staff.emailVerifiedAt).not.toBeNull();
    expect(
      (await prisma.consent.findMany({ where: { userId: staff.id } })).map((row) => row.document).sort(),
    ).toEqual(['PRIVACY', 'TERMS']);
  });

  it('burns an activation code after 5 wrong tries', async () => {
    gateway.set('ok');
    await invite({ channel: 'SMS', phone: '+33655443322' });
    const code = /(\d{6})/.exec(gateway.received.at(-1)?.text ?? '')?.[1] as string;
    const wrong = code === '000000' ? '111111' : '000000';
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { body } = await t.gql<{ activateAccount: { code: string } }>(ACTIVATE, {
        input: {
          phone: '+33655443322',
          code: wrong,
          password: 'another sturdy passphrase',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      });
      answers.push(body.data?.activateAccount.code as string);
    }
    expect(answers).toEqual([
      'INVALID_CODE',
      'INVALID_CODE',
      'INVALID_CODE',
      'INVALID_CODE',
      'TOO_MANY_ATTEMPTS',
    ]);
    const right = await t.gql<{ activateAccount: { code: string } }>(ACTIVATE, {
      input: {
        phone: '+33655443322',
        code,
        password: 'another sturdy passphrase',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    expect(right.body.data?.activateAccount.code).toBe('TOO_MANY_ATTEMPTS');
  });

  it('refuses outsiders, bad input, and contacts already in use', async () => {
    expect((await invite({ channel: 'SMS', phone: '+33600000001' }, {})).errors?.[0]?.extensions?.code).toBe(
      'UNAUTHENTICATED',
    );
    expect((await invite({ channel: 'SMS' })).data?.inviteMember).toMatchObject({
      __typename: 'ValidationError',
      fields: [{ path: ['input', 'phone'], message: 'A phone number is needed to invite by SMS' }],
    });
    expect((await invite({ channel: 'EMAIL', email: adminEmail })).data?.inviteMember).toMatchObject({
      __typename: 'EmailTakenError',
    });
    gateway.set('ok');
    await invite({ channel: 'SMS', phone: '+33600000002' });
    expect((await invite({ channel: 'SMS', phone: '+33600000002' })).data?.inviteMember).toMatchObject({
      __typename: 'ConflictError',
    });
    const weak = await t.gql<{ activateAccount: { __typename: string } }>(ACTIVATE, {
      input: { phone: '+33600000002', code: '123456', password: 'short' },
    });
    expect(weak.body.data?.activateAccount.__typename).toBe('ValidationError');
  });
});
