/**
 * Subscriptions over a real WebSocket: authorized when they start (an error, then complete), and
 * ended when their session ends (on another instance too) or their access token expires.
 */
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { recordSubscription, startTestApp, TEST_SECRETS } from '../test/harness.js';
import { createClinic } from '../test/registration-flow.js';

const PROGRESS = 'subscription { provisioningProgress { clinicId step status } }';
const HEALTH = 'subscription { clinicHealthChanged { clinicId dbStatus } }';

describe('subscription authorization and lifetime', async () => {
  const env = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };
  const a = await startTestApp(env);
  const b = await startTestApp({ ...env, DATABASE_URL: a.config.databaseUrl });
  const { prisma } = a.app.deps.db;
  const admin = await prisma.user.findUniqueOrThrow({ where: { email: a.config.adminEmail } });
  const clinicAdmin = await prisma.user.create({
    data: {
      email: `subscriber-${Date.now()}@example.com`,
      firstName: 'S',
      lastName: 'U',
      role: 'CLINIC_ADMIN',
      emailVerifiedAt: new Date(),
    },
  });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  let clinics = 0;
  const provision = () =>
    createClinic(a, {
      clinicName: `Watched ${++clinics}`,
      country: 'FR',
    });

  it.each([
    ['provisioningProgress', PROGRESS],
    ['clinicHealthChanged', HEALTH],
  ])(
    'refuses an anonymous or non-operator %s when it starts: an error, then complete',
    async (_name, query) => {
      const anonymous = recordSubscription(b.ws(), query);
      await anonymous.done;
      expect(anonymous.events).toEqual(['next UNAUTHENTICATED', 'complete']);
      const session = await a.app.deps.auth.startSession(clinicAdmin.id, { ip: null }, 'test');
      const forbidden = recordSubscription(b.ws({ connectionParams: bearer(session.accessToken) }), query);
      await forbidden.done;
      expect(forbidden.events).toEqual(['next FORBIDDEN', 'complete']);
    },
  );

  it("ends a super-admin's subscription when the session signs out on another instance", async () => {
    const session = await a.app.deps.auth.startSession(admin.id, { ip: null }, 'test');
    const live = recordSubscription(b.ws({ connectionParams: bearer(session.accessToken) }), PROGRESS);
    // Events flow while the session lives.
    await expect
      .poll(async () => {
        if (!live.events.includes('next central_records:STARTED')) await provision();
        return live.events.includes('next central_records:STARTED');
      })
      .toBe(true);

    await a.gql('mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
      t: session.refreshToken,
    });
    await live.done;
    expect(live.events.slice(-2)).toEqual(['next UNAUTHENTICATED', 'complete']);
    const seen = live.events.length;
    await provision();
    expect(live.events).toHaveLength(seen);
  });

  it('ends it when the session ended between its authorization and its start', async () => {
    const session = await a.app.deps.auth.startSession(admin.id, { ip: null }, 'test');
    const { auth, events } = b.app.deps;
    const authenticate = auth.authenticate.bind(auth);
    // The sign-out lands, and b has heard of it, after the session was read for this subscription
    // but before the subscription is watched: nothing is watching yet when the end arrives.
    auth.authenticate = async (header) => {
      const viewer = await authenticate(header);
      if (header === `Bearer ${session.accessToken}`) {
        await a.gql('mutation ($t: String!) { signOut(refreshToken: $t) { __typename } }', {
          t: session.refreshToken,
        });
        await events.sync();
      }
      return viewer;
    };
    try {
      const live = recordSubscription(b.ws({ connectionParams: bearer(session.accessToken) }), HEALTH);
      const outcome = await Promise.race([
        live.done.then(() => live.events),
        new Promise((resolve) => setTimeout(() => resolve('still live after 5 s'), 5_000)),
      ]);
      expect(outcome).toEqual(['next UNAUTHENTICATED', 'complete']);
    } finally {
      auth.authenticate = authenticate;
    }
  });

  it('ends it when its access token expires', async () => {
    const session = await a.app.deps.auth.startSession(admin.id, { ip: null }, 'test');
    const { payload } = await import('jose').then((jose) =>
      jose.jwtVerify(session.accessToken, new TextEncoder().encode(TEST_SECRETS.JWT_SECRET)),
    );
    // The same session, with a token that expires in two seconds.
    const shortLived = await new SignJWT({ role: payload.role, cid: payload.cid, sid: payload.sid })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(admin.id)
      .setIssuer('onramp')
      .setAudience('onramp')
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(TEST_SECRETS.JWT_SECRET));
    const live = recordSubscription(b.ws({ connectionParams: bearer(shortLived) }), HEALTH);
    await live.done;
    expect(live.events).toEqual(['next UNAUTHENTICATED', 'complete']);
  });

  it('lets a subscription the client ends go at once, without waiting for an event', async () => {
    const session = await a.app.deps.auth.startSession(admin.id, { ip: null }, 'test');
    const client = b.ws({ connectionParams: bearer(session.accessToken) });
    const live = recordSubscription(client, HEALTH);
    await expect.poll(() => watchedSubscriptions(b)).toBe(1);
    live.unsubscribe();
    await expect.poll(() => watchedSubscriptions(b)).toBe(0);
  });
});

/** Subscriptions bound to a session on this instance right now, from /metrics. */
async function watchedSubscriptions(t: { url: string }): Promise<number> {
  const text = await (await fetch(`${t.url}/metrics`)).text();
  return Number(/^onramp_session_bound_subscriptions (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
}
