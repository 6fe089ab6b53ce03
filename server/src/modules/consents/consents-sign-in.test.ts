/**
 * Consents at the sign-in paths that spend something (docs/decisions/056): a ConsentRequired or
 * CONSENT_WITHDRAWN answer leaves the e-mail code usable, counters are not fooled by it, and
 * withdrawing the privacy notice ends every session at once.
 */
import { describe, expect, it } from 'vitest';
import { recordSubscription, startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, clinicWithAdmin, mailedCode } from '../../../test/registration-flow.js';
import { MAX_FAILED_ATTEMPTS } from '../auth/login-codes.js';
import { base32Decode, currentStep, totpAt } from '../auth/totp.js';

const SIGN_IN = `mutation ($e: String!, $c: String!, $accepted: [AcceptedDocumentInput!]) {
  signInWithCode(email: $e, code: $c, acceptedDocuments: $accepted) {
    __typename
    ... on AuthSession { accessToken }
    ... on ConsentRequired { documents { document version } current { document } }
    ... on ValidationError { fields { path } }
    ... on Error { code }
  }
}`;
const ADD_CLIENT = `mutation ($input: AddClientInput!) { addClient(input: $input) { __typename } }`;
const WITHDRAW_PRIVACY = 'mutation { withdrawConsent(document: PRIVACY) { __typename } }';

interface Answer {
  __typename: string;
  accessToken?: string;
  documents?: { document: string; version: string }[];
  current?: { document: string }[];
  fields?: { path: string[] }[];
  code?: string;
}

describe('consents at sign-in', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const { clinic, headers: admin } = await clinicWithAdmin(t);
  let clients = 0;

  /** A client record of the clinic, and a sign-in code mailed to it (its first). */
  const clientWithCode = async () => {
    clients += 1;
    const email = `client-${clients}-${Date.now()}@example.com`;
    await t.gql(
      ADD_CLIENT,
      { input: { clinicId: clinic.id, kind: 'PERSON', email, firstName: 'Cam', lastName: 'Lee' } },
      admin,
    );
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
    return { email, code: await mailedCode(t, email) };
  };
  const signIn = async (email: string, code: string, accepted?: unknown) =>
    (await t.gql<{ signInWithCode: Answer }>(SIGN_IN, { e: email, c: code, accepted })).body.data
      ?.signInWithCode;
  /** A fresh code for an existing client (the per-e-mail cooldown is tested elsewhere). */
  const newCode = async (email: string) => {
    await prisma.loginCode.deleteMany({ where: { email } });
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
    return mailedCode(t, email, { atLeast: 2 });
  };

  it("asks a client's first code sign-in for both documents, and the same code then works", async () => {
    const { email, code } = await clientWithCode();
    expect(await signIn(email, code)).toEqual({
      __typename: 'ConsentRequired',
      documents: [
        { document: 'TERMS', version: '2026-01' },
        { document: 'PRIVACY', version: '2026-01' },
      ],
      current: [{ document: 'TERMS' }, { document: 'PRIVACY' }],
    });
    // Refusing (an old or missing version) is a ValidationError on the field; the code is not spent.
    expect(await signIn(email, code, [{ document: 'TERMS', version: '2026-01' }])).toEqual({
      __typename: 'ValidationError',
      fields: [{ path: ['acceptedDocuments'] }],
      code: 'VALIDATION_FAILED',
    });
    const session = await signIn(email, code, CURRENT_ACCEPTANCES);
    expect(session?.__typename).toBe('AuthSession');
    // Single use still: the code went with the session.
    expect((await signIn(email, code, CURRENT_ACCEPTANCES))?.code).toBe('INVALID_CODE');
    const user = await prisma.user.findUniqueOrThrow({ where: { email } });
    const rows = await prisma.consent.findMany({ where: { userId: user.id }, orderBy: { document: 'asc' } });
    expect(rows.map(({ document, version }) => `${document} ${version}`)).toEqual([
      'PRIVACY 2026-01',
      'TERMS 2026-01',
    ]);
    expect(rows.every((row) => row.ip !== null && row.withdrawnAt === null)).toBe(true);
    // Accepted once: the next code sign-in asks nothing.
    expect((await signIn(email, await newCode(email)))?.__typename).toBe('AuthSession');
  });

  it('ends every session of the user at once when the privacy notice is withdrawn, audited', async () => {
    // Subscriptions are the operators': the super-admin accepts, then withdraws.
    const headers = await t.superAdmin();
    const user = await prisma.user.findUniqueOrThrow({ where: { email: t.config.adminEmail } });
    await t.gql(
      'mutation ($a: [AcceptedDocumentInput!]!) { acceptConsents(acceptedDocuments: $a) { __typename } }',
      { a: CURRENT_ACCEPTANCES },
      headers,
    );
    const other = await t.app.deps.auth.startSession(user.id, { ip: null }, 'test');
    const live = recordSubscription(
      t.ws({ connectionParams: { authorization: `Bearer ${other.accessToken}` } }),
      'subscription { provisioningProgress { step } }',
    );
    // The subscription is live before the withdrawal.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(live.events).toEqual([]);
    const open = await prisma.session.count({ where: { userId: user.id, revokedAt: null } });
    expect(open).toBeGreaterThanOrEqual(2);
    const withdrawn = await t.gql<{ withdrawConsent: { __typename: string } }>(
      WITHDRAW_PRIVACY,
      undefined,
      headers,
    );
    expect(withdrawn.body.data?.withdrawConsent.__typename).toBe('WithdrawConsentSuccess');
    // The token that asked, another session's, and that session's live subscription: all ended.
    for (const bearer of [headers, { authorization: `Bearer ${other.accessToken}` }]) {
      const after = await t.gql('{ me { email } }', undefined, bearer);
      expect(after.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    await live.done;
    expect(live.events.slice(-2)).toEqual(['next UNAUTHENTICATED', 'complete']);
    const audit = await prisma.auditLog.findFirstOrThrow({
      where: { action: 'consent.withdrawn', actorId: user.id },
    });
    expect(audit.data).toMatchObject({ document: 'PRIVACY', sessionsEnded: open });
    expect(await prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(0);
    // Nothing to withdraw any more: the same answer, and no session is ended for it.
    const fresh = await t.superAdmin();
    await t.gql(WITHDRAW_PRIVACY, undefined, fresh);
    expect((await t.gql('{ me { email } }', undefined, fresh)).body.data).toEqual({
      me: { email: user.email },
    });
  });

  it('answers CONSENT_WITHDRAWN to a code sign-in without spending the code', async () => {
    const { email, code } = await clientWithCode();
    const first = await signIn(email, code, CURRENT_ACCEPTANCES);
    await t.gql(WITHDRAW_PRIVACY, undefined, { authorization: `Bearer ${first?.accessToken}` });
    const again = await newCode(email);
    const refused = await t.gql<{ signInWithCode: { current: { document: string; version: string }[] } }>(
      `mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) {
        __typename ... on ConsentWithdrawnError { code current { document version } } } }`,
      { e: email, c: again },
    );
    expect(refused.body.data?.signInWithCode).toEqual({
      __typename: 'ConsentWithdrawnError',
      code: 'CONSENT_WITHDRAWN',
      current: CURRENT_ACCEPTANCES,
    });
    expect((await signIn(email, again, CURRENT_ACCEPTANCES))?.__typename).toBe('AuthSession');
  });

  it('lets no burst of guesses past the budget while right-code answers ask for consent', async () => {
    const { email, code } = await clientWithCode();
    const wrong = code === '000000' ? '111111' : '000000';
    const answers = await Promise.all([
      ...Array.from({ length: 12 }, () => signIn(email, wrong)),
      ...Array.from({ length: 4 }, () => signIn(email, code)),
    ]);
    const kinds = answers.map((answer) => answer?.code ?? answer?.__typename);
    // Of the wrong guesses at most the budget were compared: each compared one answers
    // INVALID_CODE, but the last, which burns the code.
    expect(kinds.filter((kind) => kind === 'INVALID_CODE').length).toBeLessThan(MAX_FAILED_ATTEMPTS);
    expect(kinds.filter((kind) => kind === 'INVALID_CODE' || kind === 'TOO_MANY_ATTEMPTS')).toHaveLength(
      kinds.length - kinds.filter((kind) => kind === 'ConsentRequired').length,
    );
    const row = await prisma.loginCode.findUniqueOrThrow({ where: { email } });
    expect(row.failedAttempts).toBeLessThanOrEqual(MAX_FAILED_ATTEMPTS);

    // One after the other: a right code answered ConsentRequired gives back its own attempt,
    // never the wrong ones before it, so the budget's last guess still burns the code.
    const next = await clientWithCode();
    const miss = next.code === '000000' ? '111111' : '000000';
    for (let i = 1; i < MAX_FAILED_ATTEMPTS; i++)
      expect((await signIn(next.email, miss))?.code).toBe('INVALID_CODE');
    expect((await signIn(next.email, next.code))?.__typename).toBe('ConsentRequired');
    expect((await signIn(next.email, miss))?.code).toBe('TOO_MANY_ATTEMPTS');
    expect((await signIn(next.email, next.code, CURRENT_ACCEPTANCES))?.code).toBe('TOO_MANY_ATTEMPTS');
  });

  it("shows a user's consents to super-admins (the clinic's admin) and to the user", async () => {
    const { email, code } = await clientWithCode();
    const QUERY = `{ clinic(id: "${clinic.id}") { admin { consents { document version acceptedAt withdrawnAt } } } }`;
    const asOperator = await t.gql<{ clinic: { admin: { consents: { document: string }[] } } }>(
      QUERY,
      undefined,
      await t.superAdmin(),
    );
    expect(asOperator.body.errors).toBeUndefined();
    expect(asOperator.body.data?.clinic.admin.consents.map((c) => c.document).sort()).toEqual([
      'PRIVACY',
      'TERMS',
    ]);
    const session = await signIn(email, code, CURRENT_ACCEPTANCES);
    const own = await t.gql<{ me: { consents: { document: string }[] } }>(
      '{ me { consents { document } } }',
      undefined,
      { authorization: `Bearer ${session?.accessToken}` },
    );
    expect(own.body.data?.me.consents.map((c) => c.document).sort()).toEqual(['PRIVACY', 'TERMS']);
  });

  it('leaves the 2FA code unspent when the privacy notice was withdrawn after the password', async () => {
    const { user, headers } = await clinicWithAdmin(t);
    const setup = await t.gql<{ setupTwoFactor: { secret: string } }>(
      'mutation { setupTwoFactor { ... on SetupTwoFactorSuccess { secret } } }',
      undefined,
      headers,
    );
    const secret = setup.body.data?.setupTwoFactor.secret as string;
    const confirmed = await t.gql<{ confirmTwoFactor: { recoveryCodes: string[] } }>(
      'mutation ($c: String!) { confirmTwoFactor(code: $c) { ... on ConfirmTwoFactorSuccess { recoveryCodes } } }',
      { c: totpAt(base32Decode(secret), currentStep()) },
      headers,
    );
    const [recovery] = confirmed.body.data?.confirmTwoFactor.recoveryCodes ?? [];
    const PASSWORD_SIGN_IN = `mutation ($e: String!, $a: [AcceptedDocumentInput!]) {
      signInWithPassword(email: $e, password: "a sturdy passphrase 42", acceptedDocuments: $a) {
        __typename ... on TwoFactorChallenge { challengeToken } ... on Error { code } } }`;
    const VERIFY = `mutation ($t: String!, $c: String!) { verifyTwoFactor(challengeToken: $t, code: $c) {
      __typename ... on Error { code } } }`;
    const challenge = async (accepted?: unknown) => {
      const { body } = await t.gql<{ signInWithPassword: { challengeToken?: string } }>(PASSWORD_SIGN_IN, {
        e: user.email,
        a: accepted,
      });
      return body.data?.signInWithPassword.challengeToken as string;
    };
    const first = await challenge();
    await t.gql(WITHDRAW_PRIVACY, undefined, headers);
    const refused = await t.gql<{ verifyTwoFactor: Answer }>(VERIFY, { t: first, c: recovery });
    expect(refused.body.data?.verifyTwoFactor).toEqual({
      __typename: 'ConsentWithdrawnError',
      code: 'CONSENT_WITHDRAWN',
    });
    const second = await challenge(CURRENT_ACCEPTANCES);
    const session = await t.gql<{ verifyTwoFactor: Answer }>(VERIFY, { t: second, c: recovery });
    expect(session.body.data?.verifyTwoFactor.__typename).toBe('AuthSession');
  });

  it('leaves the activation code unspent when the acceptance is missing', async () => {
    const email = `member-${Date.now()}@example.com`;
    const invited = await t.gql<{ inviteMember: { __typename: string } }>(
      `mutation ($input: InviteMemberInput!) { inviteMember(input: $input) { __typename } }`,
      {
        input: {
          clinicId: clinic.id,
          firstName: 'Mo',
          lastName: 'Ra',
          role: 'STAFF',
          channel: 'EMAIL',
          email,
        },
      },
      admin,
    );
    expect(invited.body.data?.inviteMember.__typename).toBe('InviteMemberSuccess');
    const code = await mailedCode(t, email, { kind: 'invitation' });
    const ACTIVATE = `mutation ($input: ActivateAccountInput!) { activateAccount(input: $input) {
      __typename ... on ValidationError { fields { path } } } }`;
    const input = { email, code, password: 'a sturdy passphrase 42' };
    const refused = await t.gql<{ activateAccount: Answer }>(ACTIVATE, { input });
    expect(refused.body.data?.activateAccount).toEqual({
      __typename: 'ValidationError',
      fields: [{ path: ['input', 'acceptedDocuments'] }],
    });
    const activated = await t.gql<{ activateAccount: Answer }>(ACTIVATE, {
      input: { ...input, acceptedDocuments: CURRENT_ACCEPTANCES },
    });
    expect(activated.body.data?.activateAccount.__typename).toBe('AuthSession');
  });
});
