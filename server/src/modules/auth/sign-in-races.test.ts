/**
 * A sign-in racing a change that ends every session of its user (docs/decisions/089): turning
 * two-factor sign-in on or off, withdrawing the privacy notice, deleting the account, the first
 * proof of an e-mail that clears a password. A sign-in that checked its credentials before the
 * change committed and writes its session after must be refused, or its session must end with
 * the others: none may outlive the change. The same for a refresh racing the end of its own
 * sign-in (a sign-out, a leaked token's revocation of its family).
 */
import type pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { recordSubscription, startTestApp, type TestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, createClinic, mailedCode } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';
import type { UserRole } from '../../generated/central/enums.js';
import { recordAcceptances } from '../consents/service.js';
import { hashPassword } from './passwords.js';
import { base32Decode, currentStep, totpAt } from './totp.js';

const PASSWORD = 'a sturdy passphrase 42';
const SESSION = '... on AuthSession { accessToken refreshToken } ... on Error { code }';
const SIGN_IN = `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) {
  __typename ${SESSION} ... on TwoFactorChallenge { challengeToken } } }`;
const PHONE_OR_EMAIL_SIGN_IN = `mutation ($e: String, $ph: String, $p: String!) {
  signInWithPassword(email: $e, phone: $ph, password: $p) { __typename ${SESSION} } }`;
const VERIFY = `mutation ($t: String!, $c: String!) { verifyTwoFactor(challengeToken: $t, code: $c) {
  __typename ${SESSION} } }`;
const CODE_SIGN_IN = `mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) {
  __typename ${SESSION} } }`;
const REFRESH = `mutation ($t: String!) { refreshSession(refreshToken: $t) { __typename ${SESSION} } }`;

interface Answer {
  __typename: string;
  accessToken?: string;
  refreshToken?: string;
  challengeToken?: string;
  code?: string;
}

const codeFor = (secret: string, offset = 0) => totpAt(base32Decode(secret), currentStep() + offset);

describe('a sign-in racing the end of every session of its user', async () => {
  const env = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0', HASH_SLOTS_PER_ADDRESS: '4' };
  const t = await startTestApp(env);
  // A second instance on the same central database: the change is made on one, the sign-ins
  // answered by both.
  const b = await startTestApp({ ...env, DATABASE_URL: t.config.databaseUrl });
  const { prisma } = t.app.deps.db;
  const { clinicId } = await createClinic(t, { clinicName: 'Racing sign-ins', country: 'FR' });

  // A fixed clock (the apps run in this process): 1 s into a 30-second step, so every code below
  // belongs to the step it was computed for, whenever the test runs.
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['Date'], now: Math.floor(Date.now() / 30_000) * 30_000 + 1_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  let n = 0;
  /** A verified user with a password, in the clinic unless `role` is a super-admin. */
  async function user(role: UserRole = 'CLINIC_ADMIN') {
    n += 1;
    return prisma.user.create({
      data: {
        email: `racer-${n}-${Date.now()}@example.com`,
        firstName: 'R',
        lastName: 'S',
        role,
        clinicId: role === 'SUPER_ADMIN' ? null : clinicId,
        emailVerifiedAt: new Date(),
        passwordHash: await hashPassword(PASSWORD),
      },
    });
  }
  const open = (userId: string) => t.app.deps.auth.startSession(userId, { ip: '127.0.0.1' }, 'test');
  /** The session id an access token names (its `sid`). */
  const sidOf = (accessToken: string) =>
    (JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString()) as { sid: string }).sid;
  const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` });
  const call = async (app: TestApp, query: string, variables: Record<string, unknown>, token?: string) => {
    const { body } = await app.gql<Record<string, Answer>>(query, variables, token ? bearer(token) : {});
    if (body.errors) return { __typename: String(body.errors[0]?.extensions?.code) };
    return Object.values(body.data ?? {})[0] as Answer;
  };
  const me = async (app: TestApp, accessToken: string) => {
    const { body } = await app.gql<{ me: { id: string } }>('{ me { id } }', undefined, bearer(accessToken));
    return body.errors?.[0]?.extensions?.code ?? 'usable';
  };
  /** What is left of a sign-in's answer: its session is refused everywhere, or it was no session. */
  const leftOf = async (answer: Answer) => {
    if (answer.__typename !== 'AuthSession') return answer.__typename;
    const tokens = [await me(t, answer.accessToken ?? ''), await me(b, answer.accessToken ?? '')];
    const refreshed = await call(b, REFRESH, { t: answer.refreshToken });
    return `AuthSession: token ${tokens.join('/')}, refresh ${refreshed.__typename}`;
  };
  const ENDED = 'AuthSession: token UNAUTHENTICATED/UNAUTHENTICATED, refresh InvalidRefreshTokenError';

  /**
   * Runs `signIn` with its session's write held: the test holds the user's clinic row, which the
   * statement that writes a session locks (only into a READY clinic, auth/service.ts), so the
   * sign-in has checked its credentials and waits to write. `change` then runs and commits; the
   * row is let go and the sign-in goes on.
   */
  async function heldAtItsWrite(signIn: () => Promise<Answer>, change: () => Promise<void>): Promise<Answer> {
    return withClient(t.config.databaseUrl as string, async (client: pg.Client) => {
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM clinics WHERE id = $1 FOR NO KEY UPDATE', [clinicId]);
      const answer = signIn();
      const waiting = async () =>
        (
          await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))`,
          )
        ).rows[0]?.n;
      await expect.poll(waiting, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      await change();
      await client.query('ROLLBACK');
      return answer;
    });
  }

  /** A user with a session of their own (`current`) and two-factor sign-in set up, not confirmed. */
  async function withTwoFactorSetUp(role: UserRole = 'CLINIC_ADMIN') {
    const racer = await user(role);
    const current = await open(racer.id);
    const { secret } = await t.app.deps.auth.twoFactor.setup(racer.id);
    const enable = async () => {
      const answer = await call(t, 'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }', {
        c: codeFor(secret),
      });
      expect(answer.__typename).toBe('ConfirmTwoFactorSuccess');
    };
    return { racer, current, secret, enable };
  }

  it('a password sign-in that read two-factor sign-in off, held while it is turned on', async () => {
    const { racer, current, secret } = await withTwoFactorSetUp();
    const answer = await heldAtItsWrite(
      () => call(b, SIGN_IN, { e: racer.email, p: PASSWORD }),
      async () => {
        const confirmed = await call(
          t,
          'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
          { c: codeFor(secret) },
          current.accessToken,
        );
        expect(confirmed.__typename).toBe('ConfirmTwoFactorSuccess');
      },
    );
    expect([ENDED, 'InvalidCredentialsError']).toContain(await leftOf(answer));
    // The session that turned it on is the only one left; a sign-in now asks for the code.
    expect(await me(t, current.accessToken)).toBe('usable');
    expect((await call(t, SIGN_IN, { e: racer.email, p: PASSWORD })).__typename).toBe('TwoFactorChallenge');
  });

  it('an e-mail code sign-in, held at its write while two-factor sign-in is turned on', async () => {
    const { racer, current, secret } = await withTwoFactorSetUp();
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: racer.email });
    const code = await mailedCode(t, racer.email as string);
    const answer = await heldAtItsWrite(
      () => call(b, CODE_SIGN_IN, { e: racer.email, c: code }),
      async () => {
        const confirmed = await call(
          t,
          'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
          { c: codeFor(secret) },
          current.accessToken,
        );
        expect(confirmed.__typename).toBe('ConfirmTwoFactorSuccess');
      },
    );
    expect([ENDED, 'InvalidCodeError']).toContain(await leftOf(answer));
  });

  it('an e-mail code sign-in without a clinic, whose user has every session ended between the attempt and the spending: refused, the code kept', async () => {
    const { racer, current, secret } = await withTwoFactorSetUp('SUPER_ADMIN');
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: racer.email });
    const code = await mailedCode(t, racer.email as string);
    // The code matched and its attempt read the user; then, before it is spent (the statement
    // that also writes the session), two-factor sign-in is turned on from the user's session.
    const codes = b.app.deps.auth.codes as unknown as Record<
      string,
      (...args: unknown[]) => Promise<unknown>
    >;
    const hold = codes.holdBeforeSpending as (...args: unknown[]) => Promise<unknown>;
    codes.holdBeforeSpending = async function (this: unknown, ...args: unknown[]) {
      const confirmed = await call(
        t,
        'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
        { c: codeFor(secret) },
        current.accessToken,
      );
      expect(confirmed.__typename).toBe('ConfirmTwoFactorSuccess');
      return hold.apply(this, args);
    };
    let answer: Answer;
    try {
      answer = await call(b, CODE_SIGN_IN, { e: racer.email, c: code });
    } finally {
      codes.holdBeforeSpending = hold;
    }
    expect([ENDED, 'InvalidCodeError']).toContain(await leftOf(answer));
    // Refused before it was spent: the same code signs in now, after the change.
    const again = await call(b, CODE_SIGN_IN, { e: racer.email, c: code });
    expect(await leftOf(again)).toBe('AuthSession: token usable/usable, refresh AuthSession');
  });

  it('a refresh, held at its write while two-factor sign-in is turned on', async () => {
    const { racer, current, secret } = await withTwoFactorSetUp();
    const other = await open(racer.id);
    const answer = await heldAtItsWrite(
      () => call(b, REFRESH, { t: other.refreshToken }),
      async () => {
        const confirmed = await call(
          t,
          'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
          { c: codeFor(secret) },
          current.accessToken,
        );
        expect(confirmed.__typename).toBe('ConfirmTwoFactorSuccess');
      },
    );
    expect([ENDED, 'InvalidRefreshTokenError']).toContain(await leftOf(answer));
  });

  it('a second factor checked for a sign-in held at its write while two-factor sign-in is turned off', async () => {
    const { racer, current, secret } = await withTwoFactorSetUp();
    const recovery = await t.app.deps.auth.twoFactor.confirm(
      racer.id,
      codeFor(secret),
      sidOf(current.accessToken),
    );
    const challenge = await call(t, SIGN_IN, { e: racer.email, p: PASSWORD });
    expect(challenge.__typename).toBe('TwoFactorChallenge');
    const answer = await heldAtItsWrite(
      () => call(b, VERIFY, { t: challenge.challengeToken, c: codeFor(secret, 1) }),
      async () => {
        const disabled = await call(
          t,
          'mutation ($c: String!) { disableTwoFactor(code: $c) { __typename } }',
          { c: recovery[0] },
          current.accessToken,
        );
        expect(disabled.__typename).toBe('DisableTwoFactorSuccess');
      },
    );
    expect([ENDED, 'InvalidCodeError']).toContain(await leftOf(answer));
  });

  it('a password sign-in that read the privacy notice accepted, held while it is withdrawn', async () => {
    const racer = await user();
    await recordAcceptances(prisma, racer.id, CURRENT_ACCEPTANCES as never, '127.0.0.1');
    const current = await open(racer.id);
    const answer = await heldAtItsWrite(
      () => call(b, SIGN_IN, { e: racer.email, p: PASSWORD }),
      async () => {
        const withdrawn = await call(
          t,
          'mutation { withdrawConsent(document: PRIVACY) { __typename } }',
          {},
          current.accessToken,
        );
        expect(withdrawn.__typename).toBe('WithdrawConsentSuccess');
      },
    );
    expect([ENDED, 'InvalidCredentialsError']).toContain(await leftOf(answer));
    expect(await prisma.session.count({ where: { userId: racer.id, revokedAt: null } })).toBe(0);
  });

  it('a password sign-in held at its write while the account is deleted', async () => {
    const racer = await user();
    const current = await open(racer.id);
    const answer = await heldAtItsWrite(
      () => call(b, SIGN_IN, { e: racer.email, p: PASSWORD }),
      async () => {
        const deleted = await call(t, 'mutation { deleteMyAccount { __typename } }', {}, current.accessToken);
        expect(deleted.__typename).toBe('DeleteMyAccountSuccess');
      },
    );
    expect([ENDED, 'InvalidCredentialsError']).toContain(await leftOf(answer));
    expect(await prisma.session.count({ where: { userId: racer.id } })).toBe(0);
  });

  // The end of one sign-in (its session family) is no end of every session, but the same race:
  // a refresh that read its session live writes its child after the family was revoked.
  it('a refresh, held at its write while its sign-in is signed out', async () => {
    const racer = await user();
    const session = await open(racer.id);
    const answer = await heldAtItsWrite(
      () => call(b, REFRESH, { t: session.refreshToken }),
      async () => {
        const out = await call(t, 'mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
          t: session.refreshToken,
        });
        expect(out.__typename).toBe('SignOutSuccess');
      },
    );
    expect([ENDED, 'InvalidRefreshTokenError']).toContain(await leftOf(answer));
    expect(await prisma.session.count({ where: { userId: racer.id, revokedAt: null } })).toBe(0);
  });

  it('a refresh, held at its write while a spent token of its sign-in, presented after the grace, revokes it', async () => {
    const racer = await user();
    const first = await open(racer.id);
    const second = await call(t, REFRESH, { t: first.refreshToken });
    expect(second.__typename).toBe('AuthSession');
    // The first token was spent over 10 s ago: presenting it again means it leaked.
    await prisma.session.updateMany({
      where: { userId: racer.id, rotatedAt: { not: null } },
      data: { rotatedAt: new Date(Date.now() - 11_000) },
    });
    const answer = await heldAtItsWrite(
      () => call(b, REFRESH, { t: second.refreshToken }),
      async () => {
        expect((await call(t, REFRESH, { t: first.refreshToken })).__typename).toBe(
          'InvalidRefreshTokenError',
        );
      },
    );
    expect([ENDED, 'InvalidRefreshTokenError']).toContain(await leftOf(answer));
    expect(await prisma.session.count({ where: { userId: racer.id, revokedAt: null } })).toBe(0);
  });

  /**
   * Password sign-ins, four in flight at a time (the account lets 5 be evaluated at once), two on
   * each instance, from before `change` until after it returned; each session answered is
   * watched at once on the instance that answered (`watch`). @returns every answer, in order.
   */
  async function burst(
    signIn: Record<string, unknown>,
    change: () => Promise<void>,
    watch: boolean,
  ): Promise<{ answer: Answer; live: ReturnType<typeof recordSubscription> | null }[]> {
    let changed = false;
    const answers: { answer: Answer; live: ReturnType<typeof recordSubscription> | null }[] = [];
    const racing = async (app: TestApp) => {
      for (let after = 0; after < 2; after += changed ? 1 : 0) {
        const answer = await call(app, PHONE_OR_EMAIL_SIGN_IN, { ...signIn, p: PASSWORD });
        // A subscription of a session that ends must end; one opened after the end is refused.
        const live =
          watch && answer.__typename === 'AuthSession'
            ? recordSubscription(
                app.ws({ connectionParams: bearer(answer.accessToken ?? '') }),
                'subscription { provisioningProgress { step } }',
              )
            : null;
        answers.push({ answer, live });
      }
    };
    const racers = Promise.all([racing(t), racing(b), racing(t), racing(b)]);
    // Let the burst get going, then make the change.
    await expect.poll(() => answers.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(4);
    await change();
    changed = true;
    await racers;
    return answers;
  }

  it('many password sign-ins on two instances racing one enabling of two-factor sign-in: none that answered a session keeps it, its subscription included', async () => {
    // On the real clock: the burst spans the change, and a code one step ahead is accepted too.
    vi.useRealTimers();
    // A super-admin: the one role that may hold a live subscription without a clinic.
    const { racer, current, secret } = await withTwoFactorSetUp('SUPER_ADMIN');
    const answers = await burst(
      { e: racer.email },
      async () => {
        const confirmed = await call(
          t,
          'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
          { c: codeFor(secret, 1) },
          current.accessToken,
        );
        expect(confirmed.__typename).toBe('ConfirmTwoFactorSuccess');
      },
      true,
    );
    const kinds = answers.map(({ answer }) => answer.__typename);
    // Sign-ins answered sessions before the change, and ask for the code after it.
    expect(kinds).toContain('AuthSession');
    expect(kinds.at(-1)).toBe('TwoFactorChallenge');
    const sessions = answers.filter(({ answer }) => answer.__typename === 'AuthSession');
    const left = await Promise.all(sessions.map(({ answer }) => leftOf(answer)));
    expect(left.filter((what) => what !== ENDED)).toEqual([]);
    for (const { live } of sessions) {
      await live?.done;
      expect(live?.events).toEqual(['next UNAUTHENTICATED', 'complete']);
    }
    expect(await me(b, current.accessToken)).toBe('usable');
    expect(
      await prisma.session.count({
        where: { userId: racer.id, revokedAt: null, id: { not: sidOf(current.accessToken) } },
      }),
    ).toBe(0);
  });

  it("many phone and password sign-ins on two instances racing the first proof of the member's e-mail, which clears that password: none keeps its session", async () => {
    vi.useRealTimers();
    // A member invited by SMS who gave an e-mail too: activating by phone set the password and
    // left the e-mail unproven, so the first code sent to it clears that password (pre-hijack).
    n += 1;
    const phone = `+3361234${String(n).padStart(4, '0')}`;
    const member = await prisma.user.create({
      data: {
        email: `member-${n}-${Date.now()}@example.com`,
        phone,
        firstName: 'M',
        lastName: 'P',
        role: 'PRACTITIONER',
        clinicId,
        passwordHash: await hashPassword(PASSWORD),
      },
    });
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: member.email });
    const code = await mailedCode(t, member.email as string);
    let proof: Answer = { __typename: 'none' };
    const answers = await burst(
      { ph: phone },
      async () => {
        proof = await call(t, CODE_SIGN_IN, { e: member.email, c: code });
        expect(proof.__typename).toBe('AuthSession');
      },
      false,
    );
    const kinds = answers.map(({ answer }) => answer.__typename);
    expect(kinds).toContain('AuthSession');
    expect(kinds.at(-1)).toBe('InvalidCredentialsError');
    const sessions = answers.filter(({ answer }) => answer.__typename === 'AuthSession');
    const left = await Promise.all(sessions.map(({ answer }) => leftOf(answer)));
    expect(left.filter((what) => what !== ENDED)).toEqual([]);
    // The code's session is the one left.
    expect(await me(b, proof.accessToken ?? '')).toBe('usable');
    expect(await prisma.session.count({ where: { userId: member.id, revokedAt: null } })).toBe(1);
  });
});
