/**
 * Invitations cannot be used to pump SMS and e-mail: they are limited per clinic and in total
 * (INVITATION_CLINIC_LIMIT, INVITATION_TOTAL_LIMIT; parallel bursts get exactly the limit),
 * need a clinic admin whose e-mail is verified, and their text starts with Onramp's own words,
 * never with the caller's, and carries no link. Clinic names with a URL or a phone number are
 * refused at registration.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../../test/harness.js';
import { clinicWithAdmin, registerClinic } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';

const INVITE = `mutation ($input: InviteMemberInput!) { inviteMember(input: $input) {
  __typename ... on InviteMemberSuccess { member { id } } ... on Error { code message } } }`;

interface InviteAnswer {
  status: number;
  headers: Headers;
  typename?: string;
  code?: string;
  errors?: { extensions?: Record<string, unknown> }[];
}

async function invite(
  t: TestApp,
  headers: Record<string, string>,
  input: Record<string, unknown>,
): Promise<InviteAnswer> {
  const answer = await t.gql<{ inviteMember: { __typename: string; code?: string } }>(
    INVITE,
    { input: { firstName: 'Sam', lastName: 'Staff', role: 'STAFF', channel: 'SMS', ...input } },
    headers,
  );
  return {
    status: answer.status,
    headers: answer.headers,
    typename: answer.body.data?.inviteMember.__typename,
    code: answer.body.data?.inviteMember.code,
    errors: answer.body.errors,
  };
}

async function outbox(t: TestApp, to: string): Promise<{ text: string }[]> {
  const { body } = await t.gql<{ devSmsOutbox: { text: string }[] }>(
    'query ($to: String!) { devSmsOutbox(to: $to) { text } }',
    { to },
    await t.superAdmin(),
  );
  return body.data?.devSmsOutbox ?? [];
}

let nextPhone = 100_000;
const phone = () => {
  nextPhone += 1;
  return `+3361${String(nextPhone).padStart(7, '0')}`;
};

describe('limits per clinic and in total', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    INVITATION_CLINIC_LIMIT: '3/24h',
    INVITATION_TOTAL_LIMIT: '5/24h',
  });

  it('10 parallel invitations per clinic: 3 for the first clinic, then the 2 left of the total for the second', async () => {
    const first = await clinicWithAdmin(t);
    const second = await clinicWithAdmin(t);
    const burst = async (admin: typeof first) => {
      const phones = Array.from({ length: 10 }, phone);
      const answers = await Promise.all(
        phones.map((to) => invite(t, admin.headers, { clinicId: admin.clinic.id, phone: to })),
      );
      const sent = (await Promise.all(phones.map((to) => outbox(t, to)))).flat();
      return { answers, sent };
    };
    for (const [admin, allowed] of [
      [first, 3],
      [second, 2],
    ] as const) {
      const { answers, sent } = await burst(admin);
      const invited = answers.filter((answer) => answer.typename === 'InviteMemberSuccess');
      const refused = answers.filter((answer) => answer.errors?.[0]?.extensions?.code === 'RATE_LIMITED');
      expect(invited).toHaveLength(allowed);
      expect(refused).toHaveLength(10 - allowed);
      for (const answer of refused) {
        expect(answer.status).toBe(429);
        expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(answer.errors?.[0]?.extensions?.retryAfter).toEqual(expect.any(Number));
      }
      expect(sent).toHaveLength(allowed);
    }
  });
});

describe('who may invite, and what the message says', async () => {
  const sink = await startSmtpSink();
  afterAll(() => sink.stop());
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    SMTP_URL: sink.url,
  });

  it('an admin whose e-mail is not verified gets EMAIL_NOT_VERIFIED, and nothing is sent', async () => {
    const registered = await registerClinic(t);
    const admin = registered.result?.user;
    const clinic = registered.result?.clinic;
    if (!admin || !clinic) throw new Error('registration failed');
    // A session for the unverified admin (password sign-in refuses them; the check must hold anyway).
    const session = await t.app.deps.auth.startSession(admin.id, { ip: '127.0.0.1' }, 'test');
    const to = phone();
    const answer = await invite(
      t,
      { authorization: `Bearer ${session.accessToken}` },
      { clinicId: clinic.id, phone: to },
    );
    expect(answer).toMatchObject({ typename: 'EmailNotVerifiedError', code: 'EMAIL_NOT_VERIFIED' });
    expect(await outbox(t, to)).toEqual([]);
  });

  it('the SMS and the e-mail start with Onramp’s words, not the clinic’s, and carry no link', async () => {
    const admin = await clinicWithAdmin(t, { clinicName: 'Cabinet Dupont' }, sink);
    const to = phone();
    expect((await invite(t, admin.headers, { clinicId: admin.clinic.id, phone: to })).typename).toBe(
      'InviteMemberSuccess',
    );
    const [sms] = await outbox(t, to);
    expect(sms?.text).toMatch(/^Onramp: your activation code is \d{6}\b/);
    expect(sms?.text.split(/\s+/).slice(0, 8).join(' ')).not.toContain('Dupont');
    expect(sms?.text).not.toMatch(/https?:|www\./i);

    const email = `invitee-${Date.now()}@example.com`;
    expect(
      (await invite(t, admin.headers, { clinicId: admin.clinic.id, channel: 'EMAIL', email, phone: null }))
        .typename,
    ).toBe('InviteMemberSuccess');
    const mail = await sink.waitFor((message) => JSON.stringify(message.to).includes(email));
    expect(mail.subject).not.toContain('Dupont');
    expect(mail.text?.trim()).toMatch(/^Onramp: your activation code is \d{6}\b/);
    expect(mail.text).not.toMatch(/https?:|www\./i);
  });

  it('a clinic name stored before these rules (with a link) never reaches the message', async () => {
    const admin = await clinicWithAdmin(t, {}, sink);
    await t.app.deps.db.prisma.clinic.update({
      where: { id: admin.clinic.id },
      data: { name: 'URGENT your bank account is locked visit http://evil.example now' },
    });
    const to = phone();
    expect((await invite(t, admin.headers, { clinicId: admin.clinic.id, phone: to })).typename).toBe(
      'InviteMemberSuccess',
    );
    const [sms] = await outbox(t, to);
    expect(sms?.text).not.toMatch(/evil|http|URGENT|bank/i);
  });

  it.each([
    'URGENT visit http://evil.example now',
    'Clinique www.evil-clinic.fr',
    'Clinique santé.fr',
    'evil.example',
    'Appelez le +33 6 12 34 56 78',
    'Clinique 06.12.34.56.78',
    'Clinique hxxps://x',
  ])('refuses the clinic name %j at registration (ValidationError on clinicName)', async (clinicName) => {
    const answer = await registerClinic(t, { clinicName });
    expect(answer.result?.__typename).toBe('ValidationError');
    expect(answer.result?.fields).toEqual([{ path: ['input', 'clinicName'], message: expect.any(String) }]);
  });

  it.each([
    'Clinique St. Anne',
    'Cabinet Dr.Martin',
    'Clinique 2000',
    'Cabinet 75008 Paris',
    'Zürich Zahnarzt',
  ])('accepts the clinic name %j', async (clinicName) => {
    expect((await registerClinic(t, { clinicName })).result?.__typename).toBe('RegisterClinicSuccess');
  });
});
