/**
 * Account pre-hijack: someone registers with a victim's e-mail and a password of their own. When
 * the victim first proves the mailbox (an e-mail code), that password stops working and every
 * session started before ends.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { devMailbox } from '../mail/service.js';

const ATTACKER_PASSWORD = 'attacker chosen passphrase 7';
const SIGN_IN = `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) {
  __typename ... on Error { code } } }`;

describe('a mailbox proven for the first time', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const victim = `victim-${Date.now()}@example.com`;
  let codesSent = 0;
  /** The code of the next sign-in mail (newest first), once it has been delivered. */
  const nextCode = async () => {
    codesSent += 1;
    let code = '';
    await expect
      .poll(async () => {
        const mails = (await devMailbox(prisma, victim, t.config.encryptionKey)).filter(
          (m) => m.kind === 'login_code',
        );
        code = mails.length === codesSent ? (/\b(\d{6})\b/.exec(mails[0]?.text ?? '')?.[1] ?? '') : '';
        return code;
      })
      .toMatch(/^\d{6}$/);
    return code;
  };
  const signInWithCode = async () => {
    await prisma.loginCode.deleteMany({ where: { email: victim } }); // no cooldown between the two
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: victim });
    const { body } = await t.gql<{ signInWithCode: { __typename: string; accessToken: string } }>(
      'mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) { __typename ... on AuthSession { accessToken } } }',
      { e: victim, c: await nextCode() },
    );
    expect(body.data?.signInWithCode.__typename).toBe('AuthSession');
    return body.data?.signInWithCode.accessToken as string;
  };
  const me = async (token: string) => {
    const { body } = await t.gql('{ me { email } }', undefined, { authorization: `Bearer ${token}` });
    return body.errors?.[0]?.extensions?.code ?? 'ok';
  };

  it("clears the password set before and ends every earlier session; later proofs don't", async () => {
    const registered = await t.gql<{ registerClinic: { __typename: string } }>(
      `mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) { __typename } }`,
      {
        input: {
          clinicName: 'Clinique Usurpée',
          country: 'FR',
          adminEmail: victim,
          adminPassword: ATTACKER_PASSWORD,
          adminFirstName: 'Not',
          adminLastName: 'Victim',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(registered.body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    const account = await prisma.user.findUniqueOrThrow({ where: { email: victim } });
    expect((await t.gql(SIGN_IN, { e: victim, p: ATTACKER_PASSWORD })).body.data).toEqual({
      signInWithPassword: { __typename: 'EmailNotVerifiedError', code: 'EMAIL_NOT_VERIFIED' },
    });
    // A session started before the proof, however it was obtained.
    const earlier = await t.app.deps.auth.startSession(account.id, { ip: null }, 'test');
    expect(await me(earlier.accessToken)).toBe('ok');

    const victimToken = await signInWithCode();
    expect(await me(victimToken)).toBe('ok');
    expect(await me(earlier.accessToken)).toBe('UNAUTHENTICATED');
    expect((await t.gql(SIGN_IN, { e: victim, p: ATTACKER_PASSWORD })).body.data).toEqual({
      signInWithPassword: { __typename: 'InvalidCredentialsError', code: 'INVALID_CREDENTIALS' },
    });
    const proven = await prisma.user.findUniqueOrThrow({ where: { email: victim } });
    expect(proven.passwordHash).toBeNull();
    expect(proven.emailVerifiedAt).not.toBeNull();
    const audit = await prisma.auditLog.findFirstOrThrow({
      where: { action: 'user.email_proven', actorId: account.id },
    });
    expect(audit.data).toMatchObject({ method: 'code', passwordCleared: true, sessionsEnded: 1 });

    // Once proven, another code sign-in is an ordinary one: the victim's session stays.
    await signInWithCode();
    expect(await me(victimToken)).toBe('ok');
  });
});
