import { Writable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../test/registration-flow.js';
import { createLogger } from './logger.js';
import { base32Decode, currentStep, totpAt } from './modules/auth/totp.js';
import { devMailbox } from './modules/mail/service.js';

/** A logger writing into `lines`. */
function capture(lines: string[]) {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return createLogger({ env: 'test', logLevel: 'trace' }, sink);
}

describe('logger', () => {
  it('redacts secrets, codes, tokens, passwords and credential headers', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ env: 'test', logLevel: 'info' }, sink);
    logger.info(
      {
        password: 'pw-1',
        token: 'tok-2',
        code: '123456',
        input: { adminPassword: 'pw-3', refreshToken: 'tok-4' },
        req: { headers: { authorization: 'Bearer tok-5', 'x-master-key': 'mk-6', accept: 'text/html' } },
        variables: { anything: 'var-7' },
      },
      'hello',
    );
    const output = lines.join('');
    for (const secret of ['pw-1', 'tok-2', '123456', 'pw-3', 'tok-4', 'tok-5', 'mk-6', 'var-7']) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('text/html');
    expect(output).toContain('[redacted]');
  });

  it('redacts secrets at any depth, in arrays, and in child loggers', () => {
    const lines: string[] = [];
    const logger = capture(lines);
    logger.info(
      {
        input: { admin: { credentials: { password: 'deep-pw-1' } } },
        sessions: [{ tokens: { refreshToken: 'deep-tok-2' } }],
        request: { headers: { Authorization: 'Bearer deep-tok-3', 'X-Master-Key': 'deep-mk-4' } },
        payload: { query: 'mutation', variables: { anything: { at: { all: 'deep-var-5' } } } },
        kept: { nested: { harmless: 'visible-6' } },
      },
      'deep',
    );
    logger.child({ session: { accessToken: 'deep-tok-7' } }).warn('from a child');
    const output = lines.join('');
    for (const secret of ['deep-pw-1', 'deep-tok-2', 'deep-tok-3', 'deep-mk-4', 'deep-var-5', 'deep-tok-7']) {
      expect(output).not.toContain(secret);
    }
    expect(output).toContain('visible-6');
    expect(lines).toHaveLength(2);
  });

  it('logs errors without the objects hanging off them', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const error = Object.assign(new Error('connect ECONNREFUSED'), {
      code: 'ECONNREFUSED',
      client: { connectionParameters: { password: 'pg-secret' } },
    });
    createLogger({ env: 'test', logLevel: 'info' }, sink).error({ err: error }, 'failed');
    const entry = JSON.parse(lines[0] ?? '{}');
    expect(entry.err).toMatchObject({
      type: 'Error',
      message: 'connect ECONNREFUSED',
      errorCode: 'ECONNREFUSED',
    });
    expect(lines.join('')).not.toContain('pg-secret');
  });
});

describe('the logs of whole sign-in flows', async () => {
  // Everything the app logs, down to trace: password, 2FA, recovery code, refresh, e-mail code.
  const t = await startTestApp({
    LOG_LEVEL: 'trace',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { prisma } = t.app.deps.db;
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Every value a caller must keep to itself, as the flows below hand them out. */
  const secrets: string[] = [];
  const keep = <T extends string | undefined>(value: T): T => {
    expect(value, 'a secret handed out by the flow').toEqual(expect.stringMatching(/^.{6,}$/));
    secrets.push(value as string);
    return value;
  };
  const mailText = async (email: string, kind: string) => {
    let text = '';
    await expect
      .poll(async () => {
        text =
          (await devMailbox(prisma, email, t.config.encryptionKey)).find((m) => m.kind === kind)?.text ?? '';
        return text;
      })
      .not.toBe('');
    return text;
  };
  type Session = { accessToken: string; refreshToken: string };
  const SESSION = '... on AuthSession { accessToken refreshToken }';

  it('never contain a password, token, code, TOTP secret or recovery code', async () => {
    // A fixed clock keeps the TOTP code in the step it was computed for (the app runs here).
    vi.useFakeTimers({ toFake: ['Date'], now: Math.floor(Date.now() / 30_000) * 30_000 + 1_000 });
    const email = 'logged-flow@example.com';
    const password = keep('a sturdy passphrase 42');
    const registered = await t.gql<{ registerClinic: { __typename: string } }>(
      'mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) { __typename } }',
      {
        input: {
          clinicName: 'Logged',
          country: 'FR',
          adminEmail: email,
          adminPassword: password,
          adminFirstName: 'L',
          adminLastName: 'G',
          acceptedDocuments: CURRENT_ACCEPTANCES,
        },
      },
    );
    expect(registered.body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    const token = keep(
      /verify-email\?token=([A-Za-z0-9_-]+)/.exec(await mailText(email, 'email_verification'))?.[1],
    );
    const verified = await t.gql('mutation ($t: String!) { verifyEmail(token: $t) { __typename } }', {
      t: token,
    });
    expect(verified.body.data).toEqual({ verifyEmail: { __typename: 'VerifyEmailSuccess' } });

    const wrong = keep('not the passphrase 43');
    const signIn = (pw: string) =>
      t.gql<{ signInWithPassword: Session & { __typename: string; challengeToken?: string } }>(
        `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { __typename ${SESSION} ... on TwoFactorChallenge { challengeToken } } }`,
        { e: email, p: pw },
      );
    expect((await signIn(wrong)).body.data?.signInWithPassword.__typename).toBe('InvalidCredentialsError');
    const first = (await signIn(password)).body.data?.signInWithPassword as Session;
    keep(first.accessToken);
    keep(first.refreshToken);
    const auth = { authorization: `Bearer ${first.accessToken}` };

    const setup = await t.gql<{ setupTwoFactor: { secret: string; otpauthUrl: string } }>(
      'mutation { setupTwoFactor { ... on SetupTwoFactorSuccess { secret otpauthUrl } } }',
      undefined,
      auth,
    );
    const secret = keep(setup.body.data?.setupTwoFactor.secret) as string;
    keep(setup.body.data?.setupTwoFactor.otpauthUrl);
    const totp = keep(totpAt(base32Decode(secret), currentStep()));
    const confirmed = await t.gql<{ confirmTwoFactor: { recoveryCodes: string[] } }>(
      'mutation ($c: String!) { confirmTwoFactor(code: $c) { ... on ConfirmTwoFactorSuccess { recoveryCodes } } }',
      { c: totp },
      auth,
    );
    const recovery = confirmed.body.data?.confirmTwoFactor.recoveryCodes ?? [];
    expect(recovery).toHaveLength(10);
    for (const code of recovery) keep(code);

    const challenge = keep((await signIn(password)).body.data?.signInWithPassword.challengeToken);
    const VERIFY = `mutation ($t: String!, $c: String!) { verifyTwoFactor(challengeToken: $t, code: $c) { __typename ${SESSION} } }`;
    const byTotp = await t.gql<{ verifyTwoFactor: Session }>(VERIFY, {
      t: challenge,
      c: keep(totpAt(base32Decode(secret), currentStep() + 1)),
    });
    keep(byTotp.body.data?.verifyTwoFactor.accessToken);
    keep(byTotp.body.data?.verifyTwoFactor.refreshToken);
    const again = keep((await signIn(password)).body.data?.signInWithPassword.challengeToken);
    const byRecovery = (await t.gql<{ verifyTwoFactor: Session }>(VERIFY, { t: again, c: recovery[0] })).body
      .data?.verifyTwoFactor as Session;
    keep(byRecovery.accessToken);
    keep(byRecovery.refreshToken);

    const refreshed = (
      await t.gql<{ refreshSession: Session }>(
        `mutation ($r: String!) { refreshSession(refreshToken: $r) { __typename ${SESSION} } }`,
        { r: byRecovery.refreshToken },
      )
    ).body.data?.refreshSession as Session;
    keep(refreshed.accessToken);
    keep(refreshed.refreshToken);

    await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
    const code = keep(/\b(\d{6})\b/.exec(await mailText(email, 'login_code'))?.[1]);
    const byCode = (
      await t.gql<{ signInWithCode: Session }>(
        `mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) { __typename ${SESSION} } }`,
        { e: email, c: code },
      )
    ).body.data?.signInWithCode as Session;
    keep(byCode.accessToken);
    keep(byCode.refreshToken);
    const signedOut = await t.gql(
      'mutation ($r: String!) { signOut(refreshToken: $r) { __typename } }',
      { r: byCode.refreshToken },
      { authorization: `Bearer ${byCode.accessToken}` },
    );
    expect(signedOut.body.data).toEqual({ signOut: { __typename: 'SignOutSuccess' } });
    await t.app.deps.auth.codes.idle();

    const logs = t.logs();
    // The flows were logged (so the search below searched something), just never their secrets.
    expect(logs).toContain('"kind":"email_verification"');
    expect(logs).toContain('"kind":"login_code"');
    expect(logs).toContain('"level":10'); // trace
    const literal = (value: string) => value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const leaked = secrets.filter((value) =>
      // Codes are digits: bounded, so that they are not found inside timestamps or ids.
      new RegExp(`(?<![0-9A-Za-z])${literal(value)}(?![0-9A-Za-z])`).test(logs),
    );
    expect(leaked).toEqual([]);
    expect(secrets.length).toBeGreaterThan(25);
  });
  it('never contain the GraphQL source: an inline password of an operation that fails', async () => {
    // A NUL byte in an argument once reached PostgreSQL (an unexpected error), whose report
    // quoted the operation's source, inline password included.
    const before = t.logs().length;
    await t.gql(
      'mutation { signInWithPassword(email: "nul\\u0000@example.com", password: "inline passphrase 4242") { __typename } }',
    );
    await t.gql(
      'mutation { signInWithPassword(email: "inline@example.com", password: "inline passphrase 4343") { nope } }',
    );
    const logs = t.logs().slice(before);
    expect(logs).toContain('"source":"yoga"'); // the requests were logged
    expect(logs).not.toContain('inline passphrase');
  });
});
