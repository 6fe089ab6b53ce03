/**
 * Every guarded attempt is counted before it is evaluated: a parallel burst evaluates at most the
 * limit, on PostgreSQL and on Redis (REDIS_URL), and a right guess late in the burst gets nowhere.
 */
import { describe, expect, it } from 'vitest';
import { startRedis, startTestApp, type TestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, createClinic } from '../../../test/registration-flow.js';
import { devMailbox } from '../mail/service.js';
import { hashPassword } from './passwords.js';
import { base32Decode, currentStep, totpAt } from './totp.js';

const PASSWORD = 'a sturdy passphrase 42';
const SIGN_IN = `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) {
  __typename ... on TwoFactorChallenge { challengeToken } ... on AuthSession { accessToken } } }`;
const VERIFY = `mutation ($t: String!, $c: String!) { verifyTwoFactor(challengeToken: $t, code: $c) {
  __typename } }`;

type Answer = { status: number; outcome: string };

/** Sends `count` operations at once; the outcome is the result's __typename or the error code. */
async function burst(
  t: TestApp,
  count: number,
  operation: (index: number) => [string, Record<string, unknown>, Record<string, string>?],
): Promise<Answer[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, index) => {
      const [query, variables, headers] = operation(index);
      const { status, body } = await t.gql<Record<string, { __typename: string }>>(query, variables, headers);
      const data = body.data ? Object.values(body.data)[0] : undefined;
      return { status, outcome: data?.__typename ?? String(body.errors?.[0]?.extensions?.code) };
    }),
  );
}
const tally = (answers: Answer[]) =>
  answers.reduce<Record<string, number>>((counts, { outcome }) => {
    counts[outcome] = (counts[outcome] ?? 0) + 1;
    return counts;
  }, {});

const redis = await startRedis();

describe.each([
  ['PostgreSQL', {}],
  ['Redis', { REDIS_URL: redis.url }],
])('bursts against the lockouts on %s', async (_backend, backendEnv) => {
  const t = await startTestApp({
    ...backendEnv,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    // Addresses come from X-Forwarded-For, so one test can speak from many.
    TRUSTED_PROXIES: '1',
    // The per-address hashing share (tested on its own) would refuse these bursts first.
    HASH_SLOTS_PER_ADDRESS: '1000',
  });
  const { prisma } = t.app.deps.db;
  let n = 0;
  const user = async (extra: Record<string, unknown> = {}) => {
    n += 1;
    const email = `burst-${n}-${Date.now()}@example.com`;
    const created = await prisma.user.create({
      data: {
        email,
        firstName: 'B',
        lastName: 'U',
        role: 'STAFF',
        emailVerifiedAt: new Date(),
        passwordHash: await hashPassword(PASSWORD),
        ...extra,
      },
    });
    return { email, id: created.id };
  };
  const from = (address: string) => ({ 'x-forwarded-for': address });
  const withTwoFactor = async () => {
    const { email, id } = await user();
    const { secret } = await t.app.deps.auth.twoFactor.setup(id);
    await prisma.user.update({ where: { id }, data: { totpEnabledAt: new Date() } });
    return { email, id, code: () => totpAt(base32Decode(secret), currentStep()) };
  };

  it('150 parallel passwords for one account, each from its own address: at most 5 evaluated, the right one at #140 refused', async () => {
    const { email } = await user();
    const answers = await burst(t, 150, (i) => [
      SIGN_IN,
      { e: email, p: i === 139 ? PASSWORD : `wrong password ${i}` },
      from(`10.1.${i >> 8}.${i & 255}`),
    ]);
    const counts = tally(answers);
    expect(answers[139]?.outcome).toBe('RATE_LIMITED');
    expect(counts.AuthSession ?? 0).toBe(0);
    expect(counts.InvalidCredentialsError).toBeLessThanOrEqual(5);
    expect(counts.RATE_LIMITED).toBeGreaterThanOrEqual(145);
    expect(answers.filter((a) => a.outcome === 'RATE_LIMITED').every((a) => a.status === 429)).toBe(true);
  });

  it('60 parallel passwords from one address: at most 20 evaluated', async () => {
    const answers = await burst(t, 60, (i) => [
      SIGN_IN,
      { e: `nobody-${i}-${Date.now()}@example.com`, p: 'wrong password 1' },
      from('192.0.2.77'),
    ]);
    const counts = tally(answers);
    expect(counts.InvalidCredentialsError).toBeLessThanOrEqual(20);
    expect(counts.RATE_LIMITED).toBeGreaterThanOrEqual(40);
  });

  it('80 parallel TOTP codes for one challenge: at most 5 evaluated, the right one at #60 refused', async () => {
    const account = await withTwoFactor();
    const challenge = await t.gql<{ signInWithPassword: { challengeToken: string } }>(SIGN_IN, {
      e: account.email,
      p: PASSWORD,
    });
    const token = challenge.body.data?.signInWithPassword.challengeToken;
    expect(token).toBeTruthy();
    const right = account.code();
    const wrong = right === '000000' ? '111111' : '000000';
    const answers = await burst(t, 80, (i) => [VERIFY, { t: token, c: i === 59 ? right : wrong }]);
    const counts = tally(answers);
    expect(answers[59]?.outcome).toBe('TooManyAttemptsError');
    expect(counts.AuthSession ?? 0).toBe(0);
    // The fifth evaluated code answers TOO_MANY_ATTEMPTS too: at most 4 INVALID_CODE.
    expect(counts.InvalidCodeError ?? 0).toBeLessThanOrEqual(4);
    expect(counts.TooManyAttemptsError).toBeGreaterThanOrEqual(76);
  });

  it('40 parallel disableTwoFactor codes: at most 5 evaluated, 2FA stays on', async () => {
    const account = await withTwoFactor();
    const session = await t.app.deps.auth.startSession(account.id, { ip: null }, 'test');
    const auth = { authorization: `Bearer ${session.accessToken}` };
    const right = account.code();
    const wrong = right === '000000' ? '111111' : '000000';
    const answers = await burst(t, 40, (i) => [
      'mutation ($c: String!) { disableTwoFactor(code: $c) { __typename } }',
      { c: i === 29 ? right : wrong },
      auth,
    ]);
    const counts = tally(answers);
    expect(counts.DisableTwoFactorSuccess ?? 0).toBe(0);
    expect(counts.InvalidCodeError ?? 0).toBeLessThanOrEqual(4);
    expect(counts.TooManyAttemptsError).toBeGreaterThanOrEqual(36);
    expect(await t.app.deps.auth.twoFactor.isEnabled(account.id)).toBe(true);
  });

  it('150 parallel code requests from one address: at most 50 accepted', async () => {
    const answers = await burst(t, 150, (i) => [
      'mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }',
      { e: `spray-${i}-${Date.now()}@example.com` },
      from('198.51.100.23'),
    ]);
    const counts = tally(answers);
    expect(counts.LoginCodeRequested).toBeLessThanOrEqual(50);
    expect(counts.LoginCodeRequested).toBeGreaterThan(0);
    expect(counts.RATE_LIMITED).toBeGreaterThanOrEqual(100);
    await t.app.deps.auth.codes.idle();
  });
});

describe('bursts against single-code budgets (PostgreSQL rows)', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const codeIn = async (email: string, kind: string) => {
    let code = '';
    await expect
      .poll(async () => {
        const mails = await devMailbox(prisma, email, t.config.encryptionKey);
        code = /\b(\d{6})\b/.exec(mails.find((m) => m.kind === kind)?.text ?? '')?.[1] ?? '';
        return code;
      })
      .toMatch(/^\d{6}$/);
    return code;
  };

  it('50 parallel sign-in codes: at most 5 compared, the right one at #40 refused', async () => {
    const email = `code-burst-${Date.now()}@example.com`;
    await prisma.user.create({
      data: { email, firstName: 'C', lastName: 'B', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
    const right = await codeIn(email, 'login_code');
    const wrong = right === '000000' ? '111111' : '000000';
    const answers = await burst(t, 50, (i) => [
      'mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) { __typename } }',
      { e: email, c: i === 39 ? right : wrong },
    ]);
    const counts = tally(answers);
    expect(answers[39]?.outcome).toBe('TooManyAttemptsError');
    expect(counts.AuthSession ?? 0).toBe(0);
    expect(counts.InvalidCodeError ?? 0).toBeLessThanOrEqual(4);
    expect((await prisma.loginCode.findUniqueOrThrow({ where: { email } })).failedAttempts).toBe(5);
  });

  it('40 parallel activation codes: at most 5 compared, the right one at #30 refused', async () => {
    const { clinicId } = await createClinic(t, {
      clinicName: 'Activation burst',
      country: 'FR',
    });
    const email = `activation-burst-${Date.now()}@example.com`;
    await t.app.deps.members.invite(
      { clinicId, firstName: 'A', lastName: 'B', role: 'STAFF', channel: 'EMAIL', phone: null, email },
      { userId: null, role: 'SUPER_ADMIN' },
    );
    const right = await codeIn(email, 'invitation');
    const wrong = right === '000000' ? '111111' : '000000';
    const answers = await burst(t, 40, (i) => [
      'mutation ($input: ActivateAccountInput!) { activateAccount(input: $input) { __typename } }',
      {
        input: {
          email,
          code: i === 29 ? right : wrong,
          password: PASSWORD,
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    ]);
    const counts = tally(answers);
    expect(answers[29]?.outcome).toBe('TooManyAttemptsError');
    expect(counts.AuthSession ?? 0).toBe(0);
    expect(counts.InvalidCodeError ?? 0).toBeLessThanOrEqual(4);
    expect((await prisma.user.findUniqueOrThrow({ where: { email } })).passwordHash).toBeNull();
  });
});
