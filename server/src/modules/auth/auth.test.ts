import { describe, expect, it } from 'vitest';
import { startTestApp, wsQuery } from '../../../test/harness.js';
import { createClinic, verifyEmail } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';

const SIGN_IN = `mutation ($email: String!, $password: String!) {
  signInWithPassword(email: $email, password: $password) {
    __typename
    ... on AuthSession { accessToken refreshToken expiresAt user { email role } }
    ... on Error { code message }
  }
}`;
const REFRESH = `mutation ($t: String!) { refreshSession(refreshToken: $t) { __typename ... on AuthSession { accessToken refreshToken } ... on Error { code } } }`;
const PASSWORD = 'a sturdy passphrase 42';

interface SignInResult {
  signInWithPassword: {
    __typename: string;
    accessToken?: string;
    refreshToken?: string;
    code?: string;
    message?: string;
  };
}

describe('password sign-in and sessions', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const { provisioning } = t.app.deps;

  let n = 0;
  async function clinicUser(options: { verified?: boolean; status?: 'READY' | 'PENDING' | 'FAILED' } = {}) {
    n += 1;
    const { clinicId, admin } = await createClinic(t, {
      clinicName: `Signin ${n}`,
      country: 'FR',
      adminPassword: PASSWORD,
    });
    const { email } = admin;
    if (options.verified !== false) await verifyEmail(t, email);
    if (options.status)
      await prisma.clinic.update({ where: { id: clinicId }, data: { status: options.status } });
    return { email, clinicId };
  }
  const signIn = async (email: string, password = PASSWORD, headers: Record<string, string> = {}) =>
    (await t.gql<SignInResult>(SIGN_IN, { email, password }, headers)).body.data?.signInWithPassword;

  it('signs in, and the access token identifies the user over HTTP and WebSocket', async () => {
    const { email } = await clinicUser();
    const session = await signIn(`  ${email.toUpperCase()} `);
    expect(session).toMatchObject({ __typename: 'AuthSession', user: { email, role: 'CLINIC_ADMIN' } });
    const me = await t.gql('{ me { email } }', undefined, {
      authorization: `Bearer ${session?.accessToken}`,
    });
    expect(me.body.data).toEqual({ me: { email } });
    expect((await t.gql('{ me { email } }')).body.data).toEqual({ me: null });
    // A token that is not valid is refused, not taken for an anonymous caller.
    const forged = await t.gql('{ me { email } }', undefined, { authorization: 'Bearer forged.token.here' });
    expect(forged.status).toBe(401);
    expect(forged.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const ws = t.ws({ connectionParams: { authorization: `Bearer ${session?.accessToken}` } });
    expect(await wsQuery(ws, '{ me { email } }')).toEqual({ data: { me: { email } } });
    const stored = await prisma.session.findFirstOrThrow({ where: { user: { email } } });
    expect(stored.refreshTokenHash).not.toBe(session?.refreshToken);
  });

  it('answers a wrong password and an unknown e-mail identically', async () => {
    const { email } = await clinicUser();
    const wrong = await t.gql(SIGN_IN, { email, password: 'not the password!' }, { 'x-forwarded-for': '1' });
    const unknown = await t.gql(SIGN_IN, { email: 'nobody-here@example.com', password: 'not the password!' });
    expect(wrong.body).toEqual(unknown.body);
    expect(wrong.body.data).toEqual({
      signInWithPassword: {
        __typename: 'InvalidCredentialsError',
        code: 'INVALID_CREDENTIALS',
        message: 'Wrong e-mail or password',
      },
    });
  });

  it('refuses an unverified e-mail, and users of a clinic that is not ready', async () => {
    expect((await signIn((await clinicUser({ verified: false })).email))?.code).toBe('EMAIL_NOT_VERIFIED');
    const pending = await signIn((await clinicUser({ status: 'PENDING' })).email);
    expect(pending).toMatchObject({
      code: 'CLINIC_UNAVAILABLE',
      message: 'Your clinic is still being set up; we will e-mail you when it is ready',
    });
    expect((await signIn((await clinicUser({ status: 'FAILED' })).email))?.code).toBe('CLINIC_UNAVAILABLE');
  });

  it('repairs a broken clinic database at sign-in before letting the user in', async () => {
    const { email, clinicId } = await clinicUser();
    const clinic = await prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const { withClient, databaseUrl } = await import('../../db/sql.js');
    await withClient(databaseUrl(t.app.deps.db.clinicServers[0]?.url as string, clinic.databaseName), (c) =>
      c.query('DROP TABLE settings'),
    );
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('DEGRADED');
    expect((await signIn(email))?.__typename).toBe('AuthSession');
    expect((await provisioning.checkClinic(clinicId)).dbStatus).toBe('HEALTHY');
  });

  it('rotates refresh tokens and revokes the family when a spent one comes back after the grace', async () => {
    const { email } = await clinicUser();
    const first = await signIn(email);
    const second = (
      await t.gql<{ refreshSession: { refreshToken: string; __typename: string } }>(REFRESH, {
        t: first?.refreshToken,
      })
    ).body.data?.refreshSession;
    expect(second?.__typename).toBe('AuthSession');
    expect(second?.refreshToken).not.toBe(first?.refreshToken);

    // Within the grace (a lost response), the spent token still works once more.
    const retry = (
      await t.gql<{ refreshSession: { __typename: string } }>(REFRESH, { t: first?.refreshToken })
    ).body.data?.refreshSession;
    expect(retry?.__typename).toBe('AuthSession');

    // After it, reuse means theft: everything descending from that sign-in dies.
    await prisma.session.updateMany({
      where: { user: { email }, rotatedAt: { not: null } },
      data: { rotatedAt: new Date(Date.now() - 60_000) },
    });
    expect((await t.gql(REFRESH, { t: first?.refreshToken })).body.data).toEqual({
      refreshSession: { __typename: 'InvalidRefreshTokenError', code: 'INVALID_REFRESH_TOKEN' },
    });
    expect((await t.gql(REFRESH, { t: second?.refreshToken })).body.data).toEqual({
      refreshSession: { __typename: 'InvalidRefreshTokenError', code: 'INVALID_REFRESH_TOKEN' },
    });
    expect(await prisma.auditLog.count({ where: { action: 'auth.refresh_reuse' } })).toBeGreaterThan(0);
  });

  it('writes no session into a clinic whose deletion was claimed after the sign-in checked it', async () => {
    const { email, clinicId } = await clinicUser();
    await withClient(t.app.deps.db.centralUrl, async (claim) => {
      // A deletion's claim, not committed yet: the sign-in still reads the clinic READY.
      await claim.query('BEGIN');
      await claim.query(`UPDATE clinics SET status = 'DELETING' WHERE id = $1`, [clinicId]);
      const answer = signIn(email);
      // The sign-in's session write waits for the claim (it locks the clinic it writes into)...
      await expect
        .poll(async () => {
          const [waiting] = await prisma.$queryRaw<{ n: number }[]>`
            SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO sessions%'`;
          return waiting?.n;
        })
        .toBe(1);
      await claim.query('COMMIT');
      // ...and, the claim committed, finds no READY clinic to write into.
      expect(await answer).toMatchObject({
        __typename: 'ClinicUnavailableError',
        code: 'CLINIC_UNAVAILABLE',
      });
    });
    const user = await prisma.user.findUniqueOrThrow({ where: { email } });
    expect(await prisma.session.count({ where: { userId: user.id } })).toBe(0);
  });

  it('signs out: the refresh token stops working', async () => {
    const { email } = await clinicUser();
    const session = await signIn(email);
    const out = await t.gql('mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
      t: session?.refreshToken,
    });
    expect(out.body.data).toEqual({ signOut: { __typename: 'SignOutSuccess' } });
    expect(
      (await t.gql<{ refreshSession: { code: string } }>(REFRESH, { t: session?.refreshToken })).body.data
        ?.refreshSession.code,
    ).toBe('INVALID_REFRESH_TOKEN');
  });

  it('locks an account out after 5 failures with RATE_LIMITED, retryAfter and HTTP 429', async () => {
    const { email } = await clinicUser();
    for (let i = 0; i < 5; i++)
      expect((await signIn(email, 'wrong password 123'))?.code).toBe('INVALID_CREDENTIALS');
    const locked = await t.gql(SIGN_IN, { email, password: PASSWORD });
    expect(locked.status).toBe(429);
    expect(locked.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(locked.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 60 });

    // Another instance on the same database enforces the same lockout.
    const other = await startTestApp({
      DATABASE_URL: t.config.databaseUrl,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    });
    const elsewhere = await other.gql(SIGN_IN, { email, password: PASSWORD });
    expect(elsewhere.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
  });

  it('bootstraps the super-admin of ONRAMP_ADMIN_EMAIL', async () => {
    const admin = await prisma.user.findUniqueOrThrow({ where: { email: 'admin@onramp.localhost' } });
    expect(admin).toMatchObject({ role: 'SUPER_ADMIN', passwordHash: null });
  });
});
