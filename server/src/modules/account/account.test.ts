import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic, verifyEmail } from '../../../test/registration-flow.js';

describe('GDPR and the audit log', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const PASSWORD = 'a sturdy passphrase 42';

  async function signedInClinicAdmin(label: string) {
    const { clinicId, admin } = await createClinic(t, {
      clinicName: `GDPR ${label}`,
      country: 'FR',
      adminFirstName: 'Ada',
      adminLastName: 'Byron',
      adminPassword: PASSWORD,
    });
    const { email } = admin;
    await verifyEmail(t, email);
    const { body } = await t.gql<{ signInWithPassword: { accessToken: string; refreshToken: string } }>(
      'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { ... on AuthSession { accessToken refreshToken } } }',
      { e: email, p: PASSWORD },
    );
    const session = body.data?.signInWithPassword;
    return {
      email,
      clinicId,
      userId: admin.id,
      refreshToken: session?.refreshToken,
      headers: { authorization: `Bearer ${session?.accessToken}` },
    };
  }

  it('exports everything about the user, and never a secret', async () => {
    const me = await signedInClinicAdmin('export');
    const { body } = await t.gql<{ exportMyData: Record<string, unknown> }>(
      '{ exportMyData }',
      undefined,
      me.headers,
    );
    const data = body.data?.exportMyData as {
      user: { email: string };
      auditLog: { action: string }[];
      clinicSide: { healthcareProvider: { email: string } };
    };
    expect(data.user.email).toBe(me.email);
    expect(data.auditLog.map((entry) => entry.action)).toContain('auth.sign_in');
    expect(data.clinicSide.healthcareProvider.email).toBe(me.email);
    expect(JSON.stringify(data)).not.toMatch(/argon2|passwordHash|refreshTokenHash|totpSecret/);
    expect((await t.gql('{ exportMyData }')).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('anonymises the account, ends its sessions, and frees the e-mail', async () => {
    const me = await signedInClinicAdmin('delete');
    const { body } = await t.gql('mutation { deleteMyAccount { __typename } }', undefined, me.headers);
    expect(body.data).toEqual({ deleteMyAccount: { __typename: 'DeleteMyAccountSuccess' } });
    const user = await prisma.user.findUniqueOrThrow({ where: { id: me.userId } });
    expect(user).toMatchObject({ firstName: 'Deleted', lastName: 'User', passwordHash: null, phone: null });
    expect(user.email).toMatch(/@deleted\.invalid$/);
    expect(await prisma.user.findUnique({ where: { email: me.email } })).toBeNull();
    const refresh = await t.gql<{ refreshSession: { __typename: string } }>(
      'mutation ($t: String!) { refreshSession(refreshToken: $t) { __typename } }',
      { t: me.refreshToken },
    );
    expect(refresh.body.data?.refreshSession.__typename).toBe('InvalidRefreshTokenError');
    const provider = await (
      await t.app.deps.provisioning.clients.get(me.clinicId)
    ).healthcareProvider.findUniqueOrThrow({ where: { userId: me.userId } });
    expect(provider).toMatchObject({ firstName: 'Deleted', email: null, active: false });
  });

  it('shows clinic admins the audit log of their clinic only, and super-admins everything', async () => {
    const a = await signedInClinicAdmin('audit-a');
    const b = await signedInClinicAdmin('audit-b');
    const query = '{ auditLog(first: 50, action: "auth.") { edges { node { action clinicId actorId } } } }';
    const { body } = await t.gql<{ auditLog: { edges: { node: { clinicId: string; action: string } }[] } }>(
      query,
      undefined,
      a.headers,
    );
    const clinics = new Set(body.data?.auditLog.edges.map((edge) => edge.node.clinicId));
    expect([...clinics]).toEqual([a.clinicId]);
    expect(body.data?.auditLog.edges.some((edge) => edge.node.action === 'auth.sign_in')).toBe(true);
    expect(clinics.has(b.clinicId)).toBe(false);
    expect((await t.gql(query)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
