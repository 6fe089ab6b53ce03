import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import {
  CURRENT_ACCEPTANCES,
  clinicWithAdmin,
  REGISTER,
  registrationInput,
} from '../../../test/registration-flow.js';

const PASSWORD = 'a sturdy passphrase 42';

const MY_CONSENTS = '{ myConsents { document version acceptedAt withdrawnAt } }';
const SIGN_IN = `mutation ($email: String!, $password: String!, $accepted: [AcceptedDocumentInput!]) {
  signInWithPassword(email: $email, password: $password, acceptedDocuments: $accepted) {
    __typename
    ... on AuthSession { accessToken }
    ... on ConsentRequired { documents { document version } }
    ... on Error { code message }
  }
}`;

interface Consent {
  document: string;
  version: string;
  acceptedAt: string;
  withdrawnAt: string | null;
}

describe('recorded consents', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;

  const myConsents = async (headers: Record<string, string>) =>
    (await t.gql<{ myConsents: Consent[] }>(MY_CONSENTS, undefined, headers)).body.data?.myConsents ?? [];

  const signIn = async (email: string, accepted?: unknown) => {
    const { body } = await t.gql<{
      signInWithPassword: {
        __typename: string;
        accessToken?: string;
        code?: string;
        documents?: { document: string; version: string }[];
      };
    }>(SIGN_IN, { email, password: PASSWORD, accepted });
    return body.data?.signInWithPassword;
  };

  it.each([
    ['missing', undefined, 'Accept the terms of use (version 2026-01)'],
    [
      'an old version',
      [
        { document: 'TERMS', version: '2025-01' },
        { document: 'PRIVACY', version: '2026-01' },
      ],
      'The current terms of use is version 2026-01, not 2025-01',
    ],
  ])(
    'refuses a registration with the acceptance %s, and creates nothing',
    async (_case, accepted, message) => {
      const input = registrationInput({ acceptedDocuments: accepted });
      const { body } = await t.gql<{
        registerClinic: { __typename: string; fields?: { path: string[]; message: string }[] };
      }>(REGISTER, { input });
      expect(body.data?.registerClinic.__typename).toBe('ValidationError');
      expect(body.data?.registerClinic.fields).toEqual([
        { path: ['input', 'acceptedDocuments'], message: expect.stringContaining(message) },
      ]);
      expect(await prisma.user.count({ where: { email: input.adminEmail } })).toBe(0);
      expect(await prisma.clinic.count({ where: { name: input.clinicName } })).toBe(0);
    },
  );

  it('records what the admin accepted at registration, with the account', async () => {
    const { user, headers } = await clinicWithAdmin(t);
    const consents = await myConsents(headers);
    expect(
      consents
        .map(({ document, version, withdrawnAt }) => ({ document, version, withdrawnAt }))
        .sort((a, b) => a.document.localeCompare(b.document)),
    ).toEqual([
      { document: 'PRIVACY', version: '2026-01', withdrawnAt: null },
      { document: 'TERMS', version: '2026-01', withdrawnAt: null },
    ]);
    // Written by central_records, with the account: the registration's client address comes along.
    const rows = await prisma.consent.findMany({ where: { userId: user.id } });
    expect(rows).toHaveLength(2);
    expect(rows.every((row) => row.ip !== null)).toBe(true);
  });

  it('refuses sign-in after the privacy notice is withdrawn, until it is accepted again', async () => {
    const { user, headers } = await clinicWithAdmin(t);
    const { body } = await t.gql<{ withdrawConsent: { withdrawn: number } }>(
      'mutation { withdrawConsent(document: PRIVACY) { ... on WithdrawConsentSuccess { withdrawn } } }',
      undefined,
      headers,
    );
    expect(body.data?.withdrawConsent.withdrawn).toBe(1);
    expect(await signIn(user.email)).toMatchObject({
      __typename: 'ConsentWithdrawnError',
      code: 'CONSENT_WITHDRAWN',
    });
    const again = await signIn(user.email, CURRENT_ACCEPTANCES);
    expect(again?.__typename).toBe('AuthSession');
    const consents = await myConsents({ authorization: `Bearer ${again?.accessToken}` });
    const privacy = consents.filter((consent) => consent.document === 'PRIVACY');
    expect(privacy.map((consent) => consent.withdrawnAt === null).sort()).toEqual([false, true]);
    expect((await signIn(user.email))?.__typename).toBe('AuthSession');
  });

  it('asks for the new version of a document at the next sign-in', async () => {
    const { user } = await clinicWithAdmin(t);
    // The user accepted an earlier privacy notice than the configured one.
    await prisma.consent.updateMany({
      where: { userId: user.id, document: 'PRIVACY' },
      data: { version: '2025-06' },
    });
    expect(await signIn(user.email)).toEqual({
      __typename: 'ConsentRequired',
      documents: [{ document: 'PRIVACY', version: '2026-01' }],
    });
    const wrong = await signIn(user.email, [{ document: 'PRIVACY', version: '2025-06' }]);
    expect(wrong?.__typename).toBe('ValidationError');
    expect((await signIn(user.email, CURRENT_ACCEPTANCES))?.__typename).toBe('AuthSession');
    expect((await signIn(user.email))?.__typename).toBe('AuthSession');
  });

  it('accepts the current versions with acceptConsents, and refuses others on that field', async () => {
    const { headers } = await clinicWithAdmin(t);
    const ACCEPT = `mutation ($accepted: [AcceptedDocumentInput!]!) { acceptConsents(acceptedDocuments: $accepted) {
      __typename ... on AcceptConsentsSuccess { consents { document } } ... on ValidationError { fields { path } } } }`;
    const refused = await t.gql<{ acceptConsents: { __typename: string; fields?: { path: string[] }[] } }>(
      ACCEPT,
      { accepted: [{ document: 'TERMS', version: '2026-01' }] },
      headers,
    );
    expect(refused.body.data?.acceptConsents).toEqual({
      __typename: 'ValidationError',
      fields: [{ path: ['acceptedDocuments'] }],
    });
    const accepted = await t.gql<{ acceptConsents: { consents: unknown[] } }>(
      ACCEPT,
      { accepted: CURRENT_ACCEPTANCES },
      headers,
    );
    expect(accepted.body.data?.acceptConsents.consents).toHaveLength(4);
  });

  it('exports the consents, and keeps them without identity when the account is deleted', async () => {
    const { user, headers } = await clinicWithAdmin(t);
    const exported = await t.gql<{ exportMyData: { consents: Consent[] } }>(
      '{ exportMyData }',
      undefined,
      headers,
    );
    expect(exported.body.data?.exportMyData.consents.map((consent) => consent.document).sort()).toEqual([
      'PRIVACY',
      'TERMS',
    ]);
    const ids = (await prisma.consent.findMany({ where: { userId: user.id } })).map((row) => row.id);
    await t.gql('mutation { deleteMyAccount { __typename } }', undefined, headers);
    const kept = await prisma.consent.findMany({ where: { id: { in: ids } } });
    expect(kept).toHaveLength(2);
    expect(kept.every((row) => row.userId === null && row.ip === null)).toBe(true);
  });
});
