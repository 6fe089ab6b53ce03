import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import {
  CURRENT_ACCEPTANCES,
  createClinic,
  letters,
  mailedCode,
  verifyAndSignIn,
} from '../../../test/registration-flow.js';

const HOUR = 3_600_000;

const REQUEST =
  'mutation ($e: String!) { requestLoginCode(email: $e) { __typename ... on LoginCodeRequested { expiresInSeconds } } }';
const SIGN_IN = `mutation ($e: String!, $c: String!, $accepted: [AcceptedDocumentInput!]) {
  signInWithCode(email: $e, code: $c, acceptedDocuments: $accepted) {
    __typename
    ... on AuthSession { accessToken user { email role } }
    ... on Error { code message }
  }
}`;

/** The whole answer to a code request that was let through (an error answer has `data: null`). */
const REQUESTED = { data: { requestLoginCode: { __typename: 'LoginCodeRequested', expiresInSeconds: 600 } } };

describe('e-mail code sign-in', async () => {
  // Without SMTP_URL mail goes to the dev mailbox: the outbox is where the test reads codes.
  // Behind one trusted proxy, so that a test can speak from an address of its own.
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    TRUSTED_PROXIES: '1',
  });
  const { prisma } = t.app.deps.db;

  /** The code of the newest sign-in mail, once the dev transport has delivered it. */
  const latestCode = (email: string, atLeast = 1) => mailedCode(t, email, { atLeast });
  const request = (email: string) => t.gql(REQUEST, { e: email });
  const signIn = async (email: string, code: string, accepted?: unknown) =>
    (
      await t.gql<{
        signInWithCode: { __typename: string; code?: string; accessToken?: string; user?: { role: string } };
      }>(SIGN_IN, { e: email, c: code, accepted })
    ).body.data?.signInWithCode;
  /** Lets the next code be requested at once (the per-e-mail cooldown is tested separately). */
  const skipCooldown = (email: string) =>
    prisma.loginCode.updateMany({
      where: { email },
      data: { lastSentAt: new Date(Date.now() - 3_600_000 + 60_000) },
    });

  it('signs the bootstrapped super-admin in with a code, which then opens operator fields', async () => {
    const email = 'admin@onramp.localhost';
    expect((await request(email)).body.data).toEqual({
      requestLoginCode: { __typename: 'LoginCodeRequested', expiresInSeconds: 600 },
    });
    const code = await latestCode(email);
    expect(code).toMatch(/^\d{6}$/);
    const stored = await prisma.loginCode.findUniqueOrThrow({ where: { email } });
    expect(stored.codeHmac).not.toContain(code);
    const session = await signIn(email, code);
    expect(session).toMatchObject({ __typename: 'AuthSession', user: { role: 'SUPER_ADMIN' } });
    expect(await signIn(email, code)).toMatchObject({ __typename: 'InvalidCodeError', code: 'INVALID_CODE' }); // single use
  });

  it('answers a known and an unknown e-mail with the same body, and sends nothing to the unknown one', async () => {
    await skipCooldown('admin@onramp.localhost');
    const known = await request('admin@onramp.localhost');
    const unknown = await request('nobody-at-all@example.com');
    expect(known.body).toEqual(unknown.body);
    expect(await prisma.mailOutbox.count({ where: { toAddress: 'nobody-at-all@example.com' } })).toBe(0);
    expect((await signIn('nobody-at-all@example.com', '123456'))?.code).toBe('INVALID_CODE');
  });

  it('burns the code after 5 wrong tries, and a new code does not reset the budget', async () => {
    const email = 'budget@example.com';
    await prisma.user.create({
      data: { email, firstName: 'B', lastName: 'U', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    await request(email);
    const code = await latestCode(email);
    const wrong = code === '000000' ? '111111' : '000000';
    for (let i = 0; i < 4; i++) expect((await signIn(email, wrong))?.code).toBe('INVALID_CODE');
    expect((await signIn(email, wrong))?.code).toBe('TOO_MANY_ATTEMPTS');
    expect((await signIn(email, code))?.code).toBe('TOO_MANY_ATTEMPTS');
    await skipCooldown(email);
    await request(email);
    expect((await signIn(email, await latestCode(email)))?.code).toBe('TOO_MANY_ATTEMPTS');
  });

  it('counts concurrent wrong guesses atomically', async () => {
    const email = 'concurrent@example.com';
    await prisma.user.create({
      data: { email, firstName: 'C', lastName: 'C', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    await request(email);
    const code = await latestCode(email);
    const wrong = code === '999999' ? '888888' : '999999';
    const answers = await Promise.all(Array.from({ length: 12 }, () => signIn(email, wrong)));
    expect(answers.filter((a) => a?.code === 'INVALID_CODE')).toHaveLength(4);
    expect(
      (await prisma.loginCode.findUniqueOrThrow({ where: { email } })).failedAttempts,
    ).toBeGreaterThanOrEqual(5);
  });

  it('refuses an expired code', async () => {
    const email = 'expired@example.com';
    await prisma.user.create({
      data: { email, firstName: 'E', lastName: 'X', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    await request(email);
    await prisma.loginCode.update({ where: { email }, data: { expiresAt: new Date(Date.now() - 1000) } });
    expect((await signIn(email, await latestCode(email)))?.code).toBe('INVALID_CODE');
  });

  it('rate-limits sending per e-mail with a growing cooldown, known or not', async () => {
    for (const email of ['admin@onramp.localhost', 'stranger@example.com']) {
      await prisma.loginCode.deleteMany({ where: { email } });
      expect((await request(email)).body).toEqual(REQUESTED);
      const again = await request(email);
      expect(again.status).toBe(429);
      expect(again.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 30 });
    }
  });

  it('limits sending per client address: 50 codes, then RATE_LIMITED for that address only', async () => {
    const from = (address: string) => (email: string) =>
      t.gql(REQUEST, { e: email }, { 'x-forwarded-for': address });
    const sprayer = from('198.51.100.50');
    // Each to another e-mail, so that no per-e-mail cooldown takes part.
    for (let i = 0; i < 50; i++) expect((await sprayer(`spray-${i}@example.com`)).body).toEqual(REQUESTED);
    const refused = await sprayer('spray-50@example.com');
    expect(refused.status).toBe(429);
    expect(refused.body.data ?? null).toBeNull();
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 600 });
    expect((await from('198.51.100.51')('spray-50@example.com')).body).toEqual(REQUESTED);
  });

  it('limits sending per client address under a parallel burst of 60: exactly 50 go out', async () => {
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        t.gql(REQUEST, { e: `burst-${i}@example.com` }, { 'x-forwarded-for': '198.51.100.52' }),
      ),
    );
    expect(answers.filter((answer) => answer.status === 200 && answer.body.data)).toHaveLength(50);
    expect(
      answers.filter(
        (answer) => answer.status === 429 && answer.body.errors?.[0]?.extensions?.code === 'RATE_LIMITED',
      ),
    ).toHaveLength(10);
  });

  it('doubles the cooldown with each code of the window, and a lapsed window starts every budget again', async () => {
    const email = 'cooldown@example.com';
    await prisma.user.create({
      data: { email, firstName: 'C', lastName: 'D', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    const sinceLastSend = (ms: number) =>
      prisma.loginCode.update({ where: { email }, data: { lastSentAt: new Date(Date.now() - ms) } });
    expect((await request(email)).body).toEqual(REQUESTED);
    await sinceLastSend(31_000);
    expect((await request(email)).body).toEqual(REQUESTED);
    const third = await request(email);
    expect(third.body.errors?.[0]?.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 60 });
    await prisma.loginCode.update({ where: { email }, data: { failedAttempts: 3 } });
    await sinceLastSend(61_000);
    expect((await request(email)).body).toEqual(REQUESTED);
    // Same window: the new code kept the spent guesses.
    expect(await prisma.loginCode.findUniqueOrThrow({ where: { email } })).toMatchObject({
      sends: 3,
      failedAttempts: 3,
    });
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    await prisma.loginCode.update({
      where: { email },
      data: { windowStartedAt: twoHoursAgo, lastSentAt: twoHoursAgo },
    });
    expect((await request(email)).body).toEqual(REQUESTED);
    expect(await prisma.loginCode.findUniqueOrThrow({ where: { email } })).toMatchObject({
      sends: 1,
      failedAttempts: 0,
    });
  });

  it('audits the code request and the sign-in, with the session it opened', async () => {
    const email = 'audited@example.com';
    const user = await prisma.user.create({
      data: { email, firstName: 'A', lastName: 'U', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    await request(email);
    const session = await signIn(email, await latestCode(email));
    expect(session?.__typename).toBe('AuthSession');
    const actions = await prisma.auditLog.findMany({ where: { actorId: user.id }, orderBy: { id: 'asc' } });
    expect(actions.map((entry) => [entry.action, entry.data])).toEqual([
      ['auth.code_requested', {}],
      ['auth.sign_in', { method: 'code' }],
    ]);
    expect(await prisma.session.count({ where: { userId: user.id } })).toBe(1);
    // The code's mail went out at once; its safety-net job is gone.
    const [mail] = await prisma.mailOutbox.findMany({ where: { toAddress: email } });
    expect(mail).toMatchObject({ status: 'SENT', attempts: 1 });
    const [jobs] = await prisma.$queryRaw<{ count: number }[]>`
      SELECT count(*)::int AS count FROM graphile_worker.jobs WHERE key = ${`mail:${mail?.id}`}`;
    expect(jobs?.count).toBe(0);
  });

  it('marks the e-mail verified when a code signs an unverified user in', async () => {
    const email = 'unverified@example.com';
    await prisma.user.create({ data: { email, firstName: 'U', lastName: 'V', role: 'STAFF' } });
    await request(email);
    expect((await signIn(email, await latestCode(email)))?.__typename).toBe('AuthSession');
    expect((await prisma.user.findUniqueOrThrow({ where: { email } })).emailVerifiedAt).toBeInstanceOf(Date);
  });

  it('forgets lapsed codes of any e-mail, and keeps live ones', async () => {
    const hourAgo = new Date(Date.now() - 2 * 3_600_000);
    await prisma.loginCode.create({
      data: {
        email: 'lapsed@example.com',
        expiresAt: hourAgo,
        windowStartedAt: hourAgo,
        lastSentAt: hourAgo,
      },
    });
    await request('live@example.com');
    expect(await t.app.deps.auth.codes.prune()).toBeGreaterThanOrEqual(1);
    expect(await prisma.loginCode.findUnique({ where: { email: 'lapsed@example.com' } })).toBeNull();
    expect(await prisma.loginCode.findUnique({ where: { email: 'live@example.com' } })).not.toBeNull();
  });

  it('writes no session for a user of a clinic that is not ready; once it is, the code signs them in', async () => {
    const { clinicId, admin } = await createClinic(t, {
      clinicName: `Not Ready ${letters(4)}`,
      country: 'FR',
    });
    const { email } = admin;
    const user = await prisma.user.findUniqueOrThrow({ where: { email } });
    await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'FAILED' } });
    await request(email);
    // The clinic is checked before a session is written (the statement that spends the code
    // writes one only for a user without a clinic).
    expect(await signIn(email, await latestCode(email))).toMatchObject({ code: 'CLINIC_UNAVAILABLE' });
    expect(await prisma.session.count({ where: { userId: user.id } })).toBe(0);

    await prisma.clinic.update({ where: { id: clinicId }, data: { status: 'READY' } });
    await skipCooldown(email);
    await request(email);
    const session = await signIn(email, await latestCode(email, 2));
    expect(session).toMatchObject({ __typename: 'AuthSession', user: { role: 'CLINIC_ADMIN' } });
    expect(await prisma.session.count({ where: { userId: user.id, revokedAt: null } })).toBe(1);
    expect(
      await prisma.auditLog.count({ where: { actorId: user.id, action: 'auth.sign_in', clinicId } }),
    ).toBe(1);
  });

  describe('client records', () => {
    async function clinicAdminToken() {
      const { clinicId, admin } = await createClinic(t, {
        clinicName: `Clients ${letters(4)}`,
        country: 'BE',
      });
      const token = await verifyAndSignIn(t, undefined, admin);
      return { clinicId, headers: { authorization: `Bearer ${token}` } };
    }
    const ADD = `mutation ($input: AddClientInput!) { addClient(input: $input) { __typename ... on ClientRecord { id email hasAccount } ... on Error { code message } ... on ValidationError { fields { path message } } } }`;

    it('creates the CLIENT user on first code request from a person or a company record, once under a race', async () => {
      const { clinicId, headers } = await clinicAdminToken();
      const person = await t.gql(
        ADD,
        {
          input: { clinicId, kind: 'PERSON', email: ' Pat@Example.com ', firstName: 'Pat', lastName: 'Lee' },
        },
        headers,
      );
      expect(person.body.data).toMatchObject({
        addClient: { __typename: 'ClientRecord', email: 'pat@example.com', hasAccount: false },
      });
      const company = await t.gql(
        ADD,
        { input: { clinicId, kind: 'COMPANY', email: 'billing@acme.example', legalName: 'ACME SA' } },
        headers,
      );
      expect(company.body.data).toMatchObject({ addClient: { __typename: 'ClientRecord' } });

      // Two first requests at once create one user (the unique e-mail decides).
      const [a, b] = await Promise.all([
        t.app.deps.auth.codes.userFor('pat@example.com'),
        t.app.deps.auth.codes.userFor('pat@example.com'),
      ]);
      expect(a?.id).toBe(b?.id);
      expect(await prisma.user.count({ where: { email: 'pat@example.com' } })).toBe(1);
      await request('PAT@example.com ');
      // A client's first sign-in accepts the documents (docs/decisions/056).
      const session = await signIn(
        'pat@example.com',
        await latestCode('pat@example.com'),
        CURRENT_ACCEPTANCES,
      );
      expect(session).toMatchObject({ __typename: 'AuthSession', user: { role: 'CLIENT' } });

      await request('billing@acme.example');
      expect(
        await signIn('billing@acme.example', await latestCode('billing@acme.example'), CURRENT_ACCEPTANCES),
      ).toMatchObject({
        user: { role: 'CLIENT' },
      });
      expect(
        (await prisma.clientRecord.findMany({ where: { clinicId } })).every((r) => r.userId !== null),
      ).toBe(true);
    });

    it('lets only admins of that clinic add clients, with typed errors for bad input', async () => {
      const { clinicId, headers } = await clinicAdminToken();
      const other = await clinicAdminToken();
      const input = { clinicId, kind: 'PERSON', email: 'x@example.com', firstName: 'X', lastName: 'Y' };
      expect((await t.gql(ADD, { input })).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect((await t.gql(ADD, { input }, other.headers)).body.errors?.[0]?.extensions?.code).toBe(
        'FORBIDDEN',
      );
      const bad = await t.gql(ADD, { input: { clinicId, kind: 'COMPANY', email: 'nope' } }, headers);
      expect(bad.body.data).toMatchObject({
        addClient: {
          __typename: 'ValidationError',
          fields: expect.arrayContaining([
            { path: ['input', 'email'], message: 'Enter a valid e-mail address' },
            { path: ['input', 'legalName'], message: 'A company needs a legal name' },
          ]),
        },
      });
      expect((await t.gql(ADD, { input }, headers)).body.data).toMatchObject({
        addClient: { __typename: 'ClientRecord' },
      });
      expect((await t.gql(ADD, { input }, headers)).body.data).toMatchObject({
        addClient: { __typename: 'ConflictError', code: 'CONFLICT' },
      });
    });
  });
});

describe('e-mail code sign-in with LOGIN_CODE_SEND_LIMITS=off (benchmarks)', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    LOGIN_CODE_SEND_LIMITS: 'off',
  });
  const { prisma } = t.app.deps.db;
  const request = (email: string) => t.gql(REQUEST, { e: email });
  // A second instance on the same central database: the budget is its row, shared by both.
  const b = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    LOGIN_CODE_SEND_LIMITS: 'off',
    DATABASE_URL: t.config.databaseUrl,
  });

  // docs/decisions/087: the guesses an e-mail gets are its window's, not its codes'. Without the
  // send limits nothing stops an attacker from asking for a new code between guesses.
  it('compares at most 5 guesses per e-mail in a window, across codes asked for within a parallel burst on two instances; only the window lapsing gives them back', async () => {
    const email = 'rotating@example.com';
    await prisma.user.create({
      data: { email, firstName: 'R', lastName: 'O', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    expect((await request(email)).body).toEqual(REQUESTED);
    // 90 at once, alternating instances: every third asks for a new code, the others guess.
    const answers = await Promise.all(
      Array.from({ length: 90 }, async (_, i) => {
        const app = i % 2 === 0 ? t : b;
        const { body } =
          i % 3 === 0
            ? await app.gql<Record<string, { __typename: string }>>(REQUEST, { e: email })
            : await app.gql<Record<string, { __typename: string }>>(SIGN_IN, { e: email, c: '000000' });
        return body.data
          ? Object.values(body.data)[0]?.__typename
          : String(body.errors?.[0]?.extensions?.code);
      }),
    );
    const tally: Record<string, number> = {};
    for (const answer of answers) tally[String(answer)] = (tally[String(answer)] ?? 0) + 1;
    // 5 guesses counted: 4 answered INVALID_CODE, the fifth burnt the code of its moment.
    expect(tally).toEqual({ LoginCodeRequested: 30, InvalidCodeError: 4, TooManyAttemptsError: 56 });
    expect(await prisma.loginCode.findUniqueOrThrow({ where: { email } })).toMatchObject({
      sends: 31,
      failedAttempts: 5,
    });
    // A code asked for after the burst: even the right one is refused, nothing is left to compare it.
    await Promise.all([t.app.deps.auth.codes.idle(), b.app.deps.auth.codes.idle()]);
    expect((await request(email)).body).toEqual(REQUESTED);
    const right = await mailedCode(t, email, { atLeast: 32 });
    const signIn = (code: string) =>
      t.gql<{ signInWithCode: { __typename: string; code?: string } }>(SIGN_IN, { e: email, c: code });
    expect((await signIn(right)).body.data?.signInWithCode.code).toBe('TOO_MANY_ATTEMPTS');
    // 5 wrong codes since the last right one: this window lasts two hours, not one.
    const openedAgo = (ms: number) =>
      prisma.loginCode.update({ where: { email }, data: { windowStartedAt: new Date(Date.now() - ms) } });
    await openedAgo(HOUR + 1_000);
    expect((await signIn(right)).body.data?.signInWithCode.code).toBe('TOO_MANY_ATTEMPTS');
    // Two hours after the window opened, the same code (still live) signs in, and the count ends.
    await openedAgo(2 * HOUR + 1_000);
    expect((await signIn(right)).body.data?.signInWithCode.__typename).toBe('AuthSession');
    expect(await prisma.loginCode.findUniqueOrThrow({ where: { email } })).toMatchObject({
      failedSinceSuccess: 0,
    });
  });

  // docs/decisions/087: a window's guesses spent, or nearly, window after window, make each
  // window longer (1 h doubled per 5 wrong codes, at most 24 h) until a right code is used.
  it('makes each window longer for an e-mail guessed at window after window, 4 or 5 guesses at a time, until its owner signs in', async () => {
    const email = 'patient-guesser@example.com';
    await prisma.user.create({
      data: { email, firstName: 'P', lastName: 'G', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    const openedAgo = (ms: number) =>
      prisma.loginCode.update({ where: { email }, data: { windowStartedAt: new Date(Date.now() - ms) } });
    const guess = async (code: string) =>
      (await t.gql<{ signInWithCode: { __typename: string; code?: string } }>(SIGN_IN, { e: email, c: code }))
        .body.data?.signInWithCode;
    const requestAgain = async () => {
      expect((await request(email)).body).toEqual(REQUESTED);
      return prisma.loginCode.findUniqueOrThrow({ where: { email } });
    };
    /** The window's length: a code asked for a minute before its end keeps the guesses spent, one after starts anew. */
    const windowHours = async () => {
      for (let hours = 1; hours <= 48; hours++) {
        await openedAgo(hours * HOUR - 60_000);
        expect((await requestAgain()).failedAttempts).toBeGreaterThan(0);
        await openedAgo(hours * HOUR + 1_000);
        if ((await requestAgain()).failedAttempts === 0) return hours;
      }
      throw new Error('the window never ended');
    };
    await requestAgain();
    const lengths: number[] = [];
    for (const guesses of [5, 4, 4, 4, 4, 4, 5]) {
      await Promise.all(Array.from({ length: guesses }, () => guess('000000')));
      lengths.push(await windowHours());
    }
    // Wrong codes since the last right one: 5, 9, 13, 17, 21, 25, 30.
    expect(lengths).toEqual([2, 2, 4, 8, 16, 24, 24]);
    // The owner's right code ends the count: 4 wrong ones later, the window lasts an hour.
    await t.app.deps.auth.codes.idle();
    const right = await mailedCode(t, email);
    expect((await guess(right))?.__typename).toBe('AuthSession');
    await requestAgain();
    await Promise.all(Array.from({ length: 4 }, () => guess('000000')));
    expect(await windowHours()).toBe(1);
    expect(await prisma.loginCode.findUniqueOrThrow({ where: { email } })).toMatchObject({
      failedAttempts: 0,
      failedSinceSuccess: 4,
    });
  });

  it('remembers an e-mail guessed at for a day past its window, and forgets the others an hour after', async () => {
    const email = 'remembered@example.com';
    const longAgo = (hours: number) => new Date(Date.now() - hours * HOUR);
    await prisma.loginCode.createMany({
      data: [
        {
          email,
          expiresAt: longAgo(3),
          windowStartedAt: longAgo(3),
          lastSentAt: longAgo(3),
          failedSinceSuccess: 5,
        },
        {
          email: 'forgotten@example.com',
          expiresAt: longAgo(27),
          windowStartedAt: longAgo(27),
          lastSentAt: longAgo(27),
          failedSinceSuccess: 5,
        },
      ],
    });
    await t.app.deps.auth.codes.prune();
    expect(await prisma.loginCode.findUnique({ where: { email } })).toMatchObject({ failedSinceSuccess: 5 });
    expect(await prisma.loginCode.findUnique({ where: { email: 'forgotten@example.com' } })).toBeNull();
  });

  it('sends again at once and from one address without limit, but still burns a code after 5 wrong tries', async () => {
    const email = 'unlimited@example.com';
    await prisma.user.create({
      data: { email, firstName: 'U', lastName: 'L', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    // More than the per-address threshold (50), and no per-e-mail cooldown.
    for (let i = 0; i < 55; i++) {
      const answer = await request(i % 2 === 0 ? email : `unknown-${i}@example.com`);
      expect(answer.body.data).toEqual({
        requestLoginCode: { __typename: 'LoginCodeRequested', expiresInSeconds: 600 },
      });
    }
    expect((await prisma.loginCode.findUniqueOrThrow({ where: { email } })).sends).toBe(28);
    const signIn = (code: string) =>
      t.gql<{ signInWithCode: { __typename: string; code?: string } }>(SIGN_IN, { e: email, c: code });
    for (let i = 0; i < 4; i++)
      expect((await signIn('000000')).body.data?.signInWithCode.code).toBe('INVALID_CODE');
    expect((await signIn('000000')).body.data?.signInWithCode.code).toBe('TOO_MANY_ATTEMPTS');
  });
});
