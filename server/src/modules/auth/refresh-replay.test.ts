/**
 * A spent refresh token presented again within the grace returns the same child token, so a thief
 * racing the owner never gets a branch of their own; after the grace the family is revoked.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { hashPassword } from './passwords.js';

const PASSWORD = 'a sturdy passphrase 42';
const REFRESH = `mutation ($t: String!) { refreshSession(refreshToken: $t) {
  __typename ... on AuthSession { accessToken refreshToken } ... on Error { code } } }`;
type Refreshed = { __typename: string; accessToken?: string; refreshToken?: string; code?: string };

describe('refresh token replay within the grace', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const email = `replay-${Date.now()}@example.com`;
  const user = await prisma.user.create({
    data: {
      email,
      firstName: 'R',
      lastName: 'P',
      role: 'STAFF',
      emailVerifiedAt: new Date(),
      passwordHash: await hashPassword(PASSWORD),
    },
  });
  const refresh = async (token: string) =>
    (await t.gql<{ refreshSession: Refreshed }>(REFRESH, { t: token })).body.data
      ?.refreshSession as Refreshed;
  const familySize = () => prisma.session.count({ where: { userId: user.id } });

  it('returns the same child however often, and however concurrently, it is replayed', async () => {
    const signIn = await t.gql<{ signInWithPassword: { refreshToken: string } }>(
      'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { ... on AuthSession { refreshToken } } }',
      { e: email, p: PASSWORD },
    );
    const r0 = signIn.body.data?.signInWithPassword.refreshToken as string;

    const owner = await refresh(r0);
    expect(owner.__typename).toBe('AuthSession');
    // The owner lost the answer, or a thief holds r0 too: either way, the same child.
    const thief = await refresh(r0);
    expect(thief.refreshToken).toBe(owner.refreshToken);
    expect(thief.accessToken).toBeTruthy();
    expect(await familySize()).toBe(2);

    const r1 = owner.refreshToken as string;
    const racing = await Promise.all(Array.from({ length: 10 }, () => refresh(r1)));
    expect(new Set(racing.map((answer) => answer.refreshToken)).size).toBe(1);
    expect(racing.every((answer) => answer.__typename === 'AuthSession')).toBe(true);
    expect(await familySize()).toBe(3);
    // Every access token of the chain works while its session does.
    const me = await t.gql('{ me { email } }', undefined, { authorization: `Bearer ${thief.accessToken}` });
    expect(me.body.data).toEqual({ me: { email } });

    // After the grace, the replay is theft: the whole family, the shared child included, ends.
    await prisma.session.updateMany({
      where: { userId: user.id, rotatedAt: { not: null } },
      data: { rotatedAt: new Date(Date.now() - 60_000) },
    });
    expect((await refresh(r0)).code).toBe('INVALID_REFRESH_TOKEN');
    expect((await refresh(racing[0]?.refreshToken as string)).code).toBe('INVALID_REFRESH_TOKEN');
    expect(await prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
  });
});
