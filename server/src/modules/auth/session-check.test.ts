/**
 * An access token is valid only while its session is: sign-out, account deletion, a role change,
 * a password set and a revoked family take effect at once, on another instance too — although
 * each instance answers the session check of a request from memory once it has read it.
 */
import { describe, expect, it } from 'vitest';
import { slowLink, startRedis, startTestApp, type TestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, createClinic } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';
import { devMailbox } from '../mail/service.js';
import { hashPassword } from './passwords.js';

const PASSWORD = 'a sturdy passphrase 42';
const SESSION =
  '__typename ... on AuthSession { accessToken refreshToken user { role } } ... on Error { code }';
type Session = { __typename: string; accessToken: string; refreshToken: string; user: { role: string } };

// Instance b hears of ends directly, or over links that hold their replies back (notifications
// included): an end must still be known to b before its next request is answered. The central
// database's triggers announce ends made by any path, on Redis's bus too.
describe.each([
  { bus: 'PostgreSQL, a direct link', delayMs: 0, redis: false },
  { bus: 'PostgreSQL, a slow link', delayMs: 25, redis: false },
  { bus: 'Redis, slow links', delayMs: 25, redis: true },
])(
  'access tokens live only as long as their session, on every instance ($bus)',
  async ({ delayMs, redis }) => {
    const redisUrl = redis ? (await startRedis()).url : undefined;
    const env = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0', REDIS_URL: redisUrl };
    const a = await startTestApp(env);
    const database = await slowLink(a.config.databaseUrl ?? '');
    const broker = redisUrl ? await slowLink(redisUrl) : undefined;
    const b = await startTestApp({ ...env, DATABASE_URL: database.url, REDIS_URL: broker?.url });
    for (const link of [database, broker]) if (link) link.delayMs = delayMs;
    const { prisma } = a.app.deps.db;
    const { clinicId } = await createClinic(a, {
      clinicName: 'Session checks',
      country: 'FR',
    });

    let n = 0;
    const signedIn = async (role: 'CLINIC_ADMIN' | 'STAFF' = 'CLINIC_ADMIN') => {
      n += 1;
      const email = `session-${n}-${Date.now()}@example.com`;
      const user = await prisma.user.create({
        data: {
          email,
          firstName: 'S',
          lastName: 'C',
          role,
          clinicId,
          emailVerifiedAt: new Date(),
          passwordHash: await hashPassword(PASSWORD),
        },
      });
      const { body } = await a.gql<{ signInWithPassword: Session }>(
        `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { ${SESSION} } }`,
        { e: email, p: PASSWORD },
      );
      const session = body.data?.signInWithPassword as Session;
      expect(session.__typename).toBe('AuthSession');
      return { ...session, id: user.id, email };
    };
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    /** `ok`, or the error code, of a few guarded operations with this token on `on`. */
    const asks = async (on: TestApp, token: string) => {
      const codes = await Promise.all(
        [
          '{ me { email } }',
          `{ auditLog(first: 1) { edges { node { id } } } }`,
          'mutation { setupTwoFactor { __typename } }',
        ].map(async (query) => {
          const { status, body } = await on.gql(query, undefined, bearer(token));
          const code = body.errors?.[0]?.extensions?.code;
          return code ? `${status} ${String(code)}` : 'ok';
        }),
      );
      return [...new Set(codes)];
    };
    const refused = ['401 UNAUTHENTICATED'];

    /**
     * Asks until `on` answers the token's session check from memory (the cache is warm). A read
     * that overlapped an end (this user's first proof of the mailbox, still on its way) is not kept.
     */
    const cached = async (on: TestApp, token: string) => {
      const { stats } = on.app.deps.auth.sessionCache;
      const hits = stats.hits;
      await expect
        .poll(async () => {
          expect(await asks(on, token)).toContain('ok');
          return stats.hits;
        })
        .toBeGreaterThan(hits);
    };

    it('answers the session check of a request from memory after the first read', async () => {
      const session = await signedIn();
      const { stats } = b.app.deps.auth.sessionCache;
      const before = { ...stats };
      for (let i = 0; i < 5; i += 1) {
        const me = await b.gql('{ me { email } }', undefined, bearer(session.accessToken));
        expect(me.body.data).toEqual({ me: { email: session.email } });
      }
      expect(stats.reads - before.reads).toBe(1);
      expect(stats.hits - before.hits).toBe(4);
    });

    it('reads the session again while the event bus is down (ends could not arrive)', async () => {
      const session = await signedIn();
      await cached(b, session.accessToken);
      const events = b.app.deps.events;
      const connected = events.connected;
      events.connected = () => false;
      try {
        const { stats } = b.app.deps.auth.sessionCache;
        const reads = stats.reads;
        expect(await asks(b, session.accessToken)).toContain('ok');
        expect(stats.reads).toBeGreaterThan(reads);
        // Revoked meanwhile, straight in the database: refused at once all the same.
        await prisma.session.updateMany({ where: { userId: session.id }, data: { revokedAt: new Date() } });
        expect(await asks(b, session.accessToken)).toEqual(refused);
      } finally {
        events.connected = connected;
      }
    });

    it('an operator revoking sessions in SQL, with the check cached on both instances', async () => {
      const session = await signedIn();
      await cached(a, session.accessToken);
      await cached(b, session.accessToken);
      await withClient(a.app.deps.db.centralUrl, (sql) =>
        sql.query('UPDATE sessions SET revoked_at = now() WHERE user_id = $1', [session.id]),
      );
      expect(await asks(b, session.accessToken)).toEqual(refused);
      expect(await asks(a, session.accessToken)).toEqual(refused);
    });

    it('sign-out', async () => {
      const session = await signedIn();
      await cached(b, session.accessToken);
      await a.gql('mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
        t: session.refreshToken,
      });
      // No waiting: the very next request, on the other instance.
      expect(await asks(b, session.accessToken)).toEqual(refused);
      expect(await asks(a, session.accessToken)).toEqual(refused);
      // Public fields refuse it too, rather than answering as if anonymous; no token is fine.
      const me = await b.gql('{ me { email } }', undefined, bearer(session.accessToken));
      expect(me.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect((await b.gql('{ me { email } }')).body.data).toEqual({ me: null });
    });

    it('account deletion', async () => {
      const session = await signedIn('STAFF');
      await cached(b, session.accessToken);
      const deleted = await a.gql(
        'mutation { deleteMyAccount { __typename } }',
        undefined,
        bearer(session.accessToken),
      );
      expect(deleted.body.data).toEqual({ deleteMyAccount: { __typename: 'DeleteMyAccountSuccess' } });
      expect(await asks(b, session.accessToken)).toEqual(refused);
    });

    it('a role change; a refresh then carries the new role', async () => {
      const session = await signedIn('CLINIC_ADMIN');
      await cached(b, session.accessToken);
      // No mutation changes a role; an operator does it in the database.
      await prisma.user.update({ where: { id: session.id }, data: { role: 'STAFF' } });
      expect(await asks(b, session.accessToken)).toEqual(refused);
      const refreshed = await b.gql<{ refreshSession: Session }>(
        `mutation ($t: String!) { refreshSession(refreshToken: $t) { ${SESSION} } }`,
        { t: session.refreshToken },
      );
      const next = refreshed.body.data?.refreshSession as Session;
      expect(next.user.role).toBe('STAFF');
      const me = await a.gql<{ me: { role: string } }>(
        '{ me { role } }',
        undefined,
        bearer(next.accessToken),
      );
      expect(me.body.data).toEqual({ me: { role: 'STAFF' } });
    });

    it('a password set (activation) ends the sessions started before it', async () => {
      const email = `activated-${Date.now()}@example.com`;
      await a.app.deps.members.invite(
        { clinicId, firstName: 'A', lastName: 'C', role: 'STAFF', channel: 'EMAIL', phone: null, email },
        { userId: null, role: 'SUPER_ADMIN' },
      );
      const codeOf = async (kind: string) => {
        let code = '';
        await expect
          .poll(async () => {
            const mails = await devMailbox(prisma, email, a.config.encryptionKey);
            code = /\b(\d{6})\b/.exec(mails.find((m) => m.kind === kind)?.text ?? '')?.[1] ?? '';
            return code;
          })
          .toMatch(/^\d{6}$/);
        return code;
      };
      const activation = await codeOf('invitation');
      // Before activating, the member signs in with an e-mail code.
      await a.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
      const byCode = await a.gql<{ signInWithCode: Session }>(
        `mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) { ${SESSION} } }`,
        { e: email, c: await codeOf('login_code') },
      );
      const early = byCode.body.data?.signInWithCode as Session;
      await cached(b, early.accessToken);

      const activated = await a.gql<{ activateAccount: Session }>(
        `mutation ($input: ActivateAccountInput!) { activateAccount(input: $input) { ${SESSION} } }`,
        { input: { email, code: activation, password: PASSWORD, acceptedDocuments: CURRENT_ACCEPTANCES } },
      );
      const fresh = activated.body.data?.activateAccount as Session;
      expect(fresh.__typename).toBe('AuthSession');
      expect(await asks(b, early.accessToken)).toEqual(refused);
      expect(await asks(b, fresh.accessToken)).toContain('ok');
    });

    it("a deleted clinic ends its users' sessions, whatever they were doing", async () => {
      const doomed = await createClinic(a, { clinicName: 'Session checks deleted', country: 'FR' });
      const member = await prisma.user.create({
        data: {
          email: `deleted-clinic-${Date.now()}@example.com`,
          firstName: 'D',
          lastName: 'C',
          role: 'CLINIC_ADMIN',
          clinicId: doomed.clinicId,
          emailVerifiedAt: new Date(),
        },
      });
      const session = await a.app.deps.auth.startSession(member.id, { ip: null }, 'test');
      await cached(b, session.accessToken);
      const deleted = await a.gql(
        'mutation ($id: ID!) { deleteClinic(clinicId: $id) { __typename } }',
        { id: doomed.clinicId },
        await a.superAdmin(),
      );
      expect(deleted.body.data).toEqual({ deleteClinic: { __typename: 'DeleteClinicSuccess' } });
      // Its admin could otherwise go on reading the clinic and inviting members into it until
      // the token expires (15 minutes), though no one of it may sign in any more.
      expect(await asks(b, session.accessToken)).toEqual(refused);
      expect(await asks(a, session.accessToken)).toEqual(refused);
      const refreshed = await b.gql<{ refreshSession: { code: string } }>(
        'mutation ($t: String!) { refreshSession(refreshToken: $t) { ... on Error { code } } }',
        { t: session.refreshToken },
      );
      expect(refreshed.body.data?.refreshSession.code).toBe('INVALID_REFRESH_TOKEN');
    });

    it('a revoked family (a spent refresh token replayed after the grace)', async () => {
      const first = await signedIn();
      const rotated = await a.gql<{ refreshSession: Session }>(
        `mutation ($t: String!) { refreshSession(refreshToken: $t) { ${SESSION} } }`,
        { t: first.refreshToken },
      );
      const second = rotated.body.data?.refreshSession as Session;
      expect(await asks(b, first.accessToken)).toEqual(['ok']);
      expect(await asks(b, second.accessToken)).toEqual(['ok']);
      await prisma.session.updateMany({
        where: { userId: first.id, rotatedAt: { not: null } },
        data: { rotatedAt: new Date(Date.now() - 60_000) },
      });
      const replay = await a.gql<{ refreshSession: { code: string } }>(
        'mutation ($t: String!) { refreshSession(refreshToken: $t) { ... on Error { code } } }',
        { t: first.refreshToken },
      );
      expect(replay.body.data?.refreshSession.code).toBe('INVALID_REFRESH_TOKEN');
      expect(await asks(b, first.accessToken)).toEqual(refused);
      expect(await asks(b, second.accessToken)).toEqual(refused);
    });

    it('over WebSocket: an operation with a dead token answers UNAUTHENTICATED, then completes', async () => {
      const session = await signedIn();
      await a.gql('mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
        t: session.refreshToken,
      });
      const client = b.ws({ connectionParams: bearer(session.accessToken) });
      const events: string[] = [];
      await new Promise<void>((resolve, reject) => {
        client.subscribe(
          { query: '{ me { email } }' },
          {
            next: (value) => events.push(`next ${String(value.errors?.[0]?.extensions?.code)}`),
            error: reject,
            complete: () => {
              events.push('complete');
              resolve();
            },
          },
        );
      });
      expect(events).toEqual(['next UNAUTHENTICATED', 'complete']);
    });
  },
);
