import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { recordSubscription, startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import { hashPassword } from './passwords.js';
import { base32Decode, base32Encode, currentStep, matchTotp, totpAt } from './totp.js';

describe('TOTP (RFC 6238)', () => {
  it('matches the RFC test vectors (SHA-1, 8 digits)', () => {
    const secret = Buffer.from('12345678901234567890');
    expect(totpAt(secret, Math.floor(59 / 30), 8)).toBe('94287082');
    expect(totpAt(secret, Math.floor(1111111109 / 30), 8)).toBe('07081804');
    expect(totpAt(secret, Math.floor(2000000000 / 30), 8)).toBe('69279037');
  });

  it('round-trips base32 and accepts a code once, within one step of drift', () => {
    const secret = base32Encode(Buffer.from('12345678901234567890'));
    expect(secret).toBe('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    expect(base32Decode(secret).toString()).toBe('12345678901234567890');
    const now = Date.now();
    const step = currentStep(now);
    const code = totpAt(base32Decode(secret), step - 1);
    expect(matchTotp(secret, code, null, now)).toBe(step - 1);
    expect(matchTotp(secret, code, step - 1, now)).toBeNull(); // replay
    expect(matchTotp(secret, totpAt(base32Decode(secret), step - 3), null, now)).toBeNull(); // too old
  });
});

describe('two-factor sign-in', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const PASSWORD = 'a sturdy passphrase 42';
  const SIGN_IN = `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) {
    __typename ... on AuthSession { accessToken } ... on TwoFactorChallenge { challengeToken } ... on Error { code } } }`;
  const VERIFY = `mutation ($t: String!, $c: String!) { verifyTwoFactor(challengeToken: $t, code: $c) {
    __typename ... on AuthSession { accessToken } ... on Error { code } } }`;
  type Result = { __typename: string; accessToken?: string; challengeToken?: string; code?: string };

  const codeFor = (secret: string, offset = 0) => totpAt(base32Decode(secret), currentStep() + offset);

  // A fixed clock (the app runs in this process): 1 s into a 30-second step, so that every code
  // below belongs to the step it was computed for, whenever the test runs.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'], now: Math.floor(Date.now() / 30_000) * 30_000 + 1_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sets up with a real code, then demands it after the password; recovery codes work once', async () => {
    const email = `twofa-${Date.now()}@example.com`;
    await prisma.user.create({
      data: {
        email,
        firstName: 'T',
        lastName: 'F',
        role: 'STAFF',
        emailVerifiedAt: new Date(),
        passwordHash: await hashPassword(PASSWORD),
      },
    });
    const signIn = async () =>
      (await t.gql<{ signInWithPassword: Result }>(SIGN_IN, { e: email, p: PASSWORD })).body.data
        ?.signInWithPassword;
    const first = await signIn();
    const auth = { authorization: `Bearer ${first?.accessToken}` };

    const setup = await t.gql<{ setupTwoFactor: { secret: string; otpauthUrl: string } }>(
      'mutation { setupTwoFactor { ... on SetupTwoFactorSuccess { secret otpauthUrl } } }',
      undefined,
      auth,
    );
    const secret = setup.body.data?.setupTwoFactor.secret as string;
    expect(setup.body.data?.setupTwoFactor.otpauthUrl).toContain(`secret=${secret}`);
    const stored = await prisma.user.findUniqueOrThrow({ where: { email } });
    expect(stored.totpSecretEnc).not.toContain(secret); // encrypted at rest

    const wrong = await t.gql(
      'mutation { confirmTwoFactor(code: "000000") { __typename } }',
      undefined,
      auth,
    );
    expect(wrong.body.data).toEqual({ confirmTwoFactor: { __typename: 'InvalidCodeError' } });
    const confirmed = await t.gql<{ confirmTwoFactor: { recoveryCodes: string[] } }>(
      'mutation ($c: String!) { confirmTwoFactor(code: $c) { ... on ConfirmTwoFactorSuccess { recoveryCodes } } }',
      { c: codeFor(secret) },
      auth,
    );
    const recovery = confirmed.body.data?.confirmTwoFactor.recoveryCodes ?? [];
    expect(recovery).toHaveLength(10);
    expect(new Set(recovery).size).toBe(10);

    const challenge = await signIn();
    expect(challenge?.__typename).toBe('TwoFactorChallenge');
    // The code used for confirmation cannot be replayed, in its own step; the next step's works.
    const replay = (
      await t.gql<{ verifyTwoFactor: Result }>(VERIFY, { t: challenge?.challengeToken, c: codeFor(secret) })
    ).body.data?.verifyTwoFactor;
    expect(replay?.code).toBe('INVALID_CODE');
    const ok = (
      await t.gql<{ verifyTwoFactor: Result }>(VERIFY, {
        t: challenge?.challengeToken,
        c: codeFor(secret, 1),
      })
    ).body.data?.verifyTwoFactor;
    expect(ok?.__typename).toBe('AuthSession');

    const again = await signIn();
    const byRecovery = (
      await t.gql<{ verifyTwoFactor: Result }>(VERIFY, {
        t: again?.challengeToken,
        c: recovery[0]?.toLowerCase(),
      })
    ).body.data?.verifyTwoFactor;
    expect(byRecovery?.__typename).toBe('AuthSession');
    const reused = (
      await t.gql<{ verifyTwoFactor: Result }>(VERIFY, { t: again?.challengeToken, c: recovery[0] })
    ).body.data?.verifyTwoFactor;
    expect(reused?.code).toBe('INVALID_CODE');
    expect(
      (await t.gql<{ verifyTwoFactor: Result }>(VERIFY, { t: 'forged', c: '123456' })).body.data
        ?.verifyTwoFactor.code,
    ).toBe('INVALID_CODE');

    // Disabling needs a valid code; afterwards the password alone is enough again.
    const session = { authorization: `Bearer ${byRecovery?.accessToken}` };
    expect(
      (await t.gql('mutation { disableTwoFactor(code: "111111") { __typename } }', undefined, session)).body
        .data,
    ).toEqual({
      disableTwoFactor: { __typename: 'InvalidCodeError' },
    });
    expect(
      (
        await t.gql(
          'mutation ($c: String!) { disableTwoFactor(code: $c) { __typename } }',
          { c: recovery[1] },
          session,
        )
      ).body.data,
    ).toEqual({
      disableTwoFactor: { __typename: 'DisableTwoFactorSuccess' },
    });
    expect((await signIn())?.__typename).toBe('AuthSession');
  });

  it('locks the second factor after 5 wrong codes', async () => {
    const email = `twofa-lock-${Date.now()}@example.com`;
    const user = await prisma.user.create({
      data: {
        email,
        firstName: 'L',
        lastName: 'K',
        role: 'STAFF',
        emailVerifiedAt: new Date(),
        passwordHash: await hashPassword(PASSWORD),
      },
    });
    await t.app.deps.auth.twoFactor.setup(user.id);
    const secret = (await t.app.deps.auth.twoFactor.setup(user.id)).secret;
    await t.app.deps.auth.twoFactor.confirm(user.id, codeFor(secret), null);
    const challenge = (await t.gql<{ signInWithPassword: Result }>(SIGN_IN, { e: email, p: PASSWORD })).body
      .data?.signInWithPassword;
    const codes: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      codes.push(
        (await t.gql<{ verifyTwoFactor: Result }>(VERIFY, { t: challenge?.challengeToken, c: '000000' })).body
          .data?.verifyTwoFactor.code,
      );
    }
    expect(codes).toEqual([
      'INVALID_CODE',
      'INVALID_CODE',
      'INVALID_CODE',
      'INVALID_CODE',
      'TOO_MANY_ATTEMPTS',
    ]);
    const right = (
      await t.gql<{ verifyTwoFactor: Result }>(VERIFY, {
        t: challenge?.challengeToken,
        c: codeFor(secret, 1),
      })
    ).body.data?.verifyTwoFactor;
    expect(right?.code).toBe('TOO_MANY_ATTEMPTS');
  });

  it('lets no one into a clinic deleted between the password and the second factor', async () => {
    // A real clinic, registered and deleted as production does it, on the real clock: TOTP
    // codes one step ahead are accepted whenever the step turns.
    vi.useRealTimers();
    const { clinicId } = await createClinic(t, { clinicName: 'Two factor deleted', country: 'FR' });
    const email = `twofa-deleted-${Date.now()}@example.com`;
    const user = await prisma.user.create({
      data: {
        email,
        firstName: 'D',
        lastName: 'L',
        role: 'CLINIC_ADMIN',
        clinicId,
        emailVerifiedAt: new Date(),
        passwordHash: await hashPassword(PASSWORD),
      },
    });
    const secret = (await t.app.deps.auth.twoFactor.setup(user.id)).secret;
    await t.app.deps.auth.twoFactor.confirm(user.id, codeFor(secret), null);
    const challenge = (await t.gql<{ signInWithPassword: Result }>(SIGN_IN, { e: email, p: PASSWORD })).body
      .data?.signInWithPassword;
    expect(challenge?.__typename).toBe('TwoFactorChallenge');
    const deleted = await t.gql(
      'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
      { id: clinicId },
      await t.superAdmin(),
    );
    expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
    // The challenge is good for 5 minutes; the clinic is gone by the time the code comes.
    const { body } = await t.gql<{ verifyTwoFactor: Result }>(VERIFY, {
      t: challenge?.challengeToken,
      c: codeFor(secret, 1),
    });
    expect(body.errors).toBeUndefined();
    expect(body.data?.verifyTwoFactor).toEqual({
      __typename: 'ClinicUnavailableError',
      code: 'CLINIC_UNAVAILABLE',
    });
    expect(await prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
  });

  it('ends the other sessions, their live subscriptions too, when two-factor sign-in is turned on or off; the session that did it stays', async () => {
    // A super-admin: the one role that may hold a live subscription without a clinic.
    const user = await prisma.user.create({
      data: {
        email: `twofa-ends-${Date.now()}@example.com`,
        firstName: 'E',
        lastName: 'S',
        role: 'SUPER_ADMIN',
        emailVerifiedAt: new Date(),
      },
    });
    const open = () => t.app.deps.auth.startSession(user.id, { ip: '127.0.0.1' }, 'test');
    const bearer = (session: { accessToken: string }) => ({ authorization: `Bearer ${session.accessToken}` });
    const watch = (session: { accessToken: string }) =>
      recordSubscription(
        t.ws({ connectionParams: bearer(session) }),
        'subscription { provisioningProgress { step } }',
      );
    const me = async (session: { accessToken: string }) => {
      const { body } = await t.gql<{ me: { email: string } }>('{ me { email } }', undefined, bearer(session));
      return body.errors?.[0]?.extensions?.code ?? body.data?.me.email;
    };
    const refresh = async (refreshToken: string) =>
      (
        await t.gql<{ refreshSession: { __typename: string } }>(
          'mutation ($t: String!) { refreshSession(refreshToken: $t) { __typename } }',
          { t: refreshToken },
        )
      ).body.data?.refreshSession.__typename;
    const current = await open();
    const secret = (
      await t.gql<{ setupTwoFactor: { secret: string } }>(
        'mutation { setupTwoFactor { ... on SetupTwoFactorSuccess { secret } } }',
        undefined,
        bearer(current),
      )
    ).body.data?.setupTwoFactor.secret as string;

    /** Another session with a live subscription, then `mutation` from the current one. */
    const change = async (mutation: string, code: string, answer: string) => {
      const other = await open();
      const otherLive = watch(other);
      const currentLive = watch(current);
      // Both subscriptions are live before the change.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect([otherLive.events, currentLive.events]).toEqual([[], []]);
      const { body } = await t.gql<Record<string, { __typename: string }>>(
        mutation,
        { c: code },
        bearer(current),
      );
      expect(Object.values(body.data ?? {})[0]?.__typename).toBe(answer);
      // The other session ended at once: its token, its refresh token and its subscription.
      expect(await me(other)).toBe('UNAUTHENTICATED');
      expect(await refresh(other.refreshToken)).toBe('InvalidRefreshTokenError');
      await otherLive.done;
      expect(otherLive.events).toEqual(['next UNAUTHENTICATED', 'complete']);
      // The session that made the change goes on, its subscription too.
      expect(await me(current)).toBe(user.email);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(currentLive.events).toEqual([]);
    };

    await change(
      'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
      codeFor(secret),
      'ConfirmTwoFactorSuccess',
    );
    await change(
      'mutation ($c: String!) { disableTwoFactor(code: $c) { __typename } }',
      codeFor(secret, 1),
      'DisableTwoFactorSuccess',
    );
    const audited = await prisma.auditLog.findMany({
      where: { actorId: user.id, action: { in: ['auth.2fa_enabled', 'auth.2fa_disabled'] } },
      orderBy: { id: 'asc' },
    });
    expect(audited.map(({ action, data }) => [action, data])).toEqual([
      ['auth.2fa_enabled', { sessionsEnded: 1 }],
      ['auth.2fa_disabled', { sessionsEnded: 1 }],
    ]);
    // Its refresh token still works: the sign-in that turned the factor on and off is kept whole.
    expect(await refresh(current.refreshToken)).toBe('AuthSession');
    expect(await prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(2);
  });

  it('requires a signed-in user to set up two-factor authentication', async () => {
    const { body } = await t.gql('mutation { setupTwoFactor { __typename } }');
    expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
