/**
 * What a password sign-in and a refresh send to the central PostgreSQL, pool warm (the
 * counterpart of code-round-trips.test.ts): statements and commits counted on the pg clients
 * of the central database inside the call's own async context. The session's write checks the
 * user's credential state in its own statement (docs/decisions/089): no round trip of its own.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { countStatements, describeTally } from '../../../test/statements.js';
import { hashPassword } from './passwords.js';

describe('round trips of a password sign-in and a refresh', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const { auth } = t.app.deps;
  const counter = countStatements(new URL(t.config.databaseUrl ?? '').pathname.slice(1));
  afterAll(() => counter.restore());
  const PASSWORD = 'a sturdy passphrase 42';
  const passwordHash = await hashPassword(PASSWORD);

  let n = 0;
  /** A verified user without a clinic: a password sign-in, then a refresh, each counted. */
  async function flowCounted() {
    n += 1;
    const email = `round-trip-password-${n}-${Date.now()}@example.com`;
    await prisma.user.create({
      data: {
        email,
        firstName: 'Ada',
        lastName: 'Lovelace',
        role: 'STAFF',
        emailVerifiedAt: new Date(),
        passwordHash,
      },
    });
    const { value: session, tally: signIn } = await counter.count(() =>
      auth.signInWithPassword({ email }, PASSWORD, { ip: '127.0.0.1' }),
    );
    expect(session).toHaveProperty('refreshToken');
    const { value: refreshed, tally: refresh } = await counter.count(() =>
      auth.refresh((session as { refreshToken: string }).refreshToken, { ip: '127.0.0.1' }),
    );
    expect(refreshed).toHaveProperty('accessToken');
    return { signIn, refresh };
  }

  it('sends at most the measured statements and commits, pool warm', async () => {
    await flowCounted(); // warm: pool connections, compiled queries
    const { signIn, refresh } = await flowCounted();
    // Measured before and after decision 089, the same: a sign-in 8 (the address's and the
    // account's attempts, the user and their clinic, the account's count cleared and the
    // address's attempt given back, the consents, then the session with its audit entry, the
    // epoch checked in it); a refresh 5 (the session, its user and clinic, the token spent, the
    // child written).
    expect(signIn.statements, describeTally(signIn)).toBeLessThanOrEqual(8);
    expect(signIn.commits, describeTally(signIn)).toBeLessThanOrEqual(8);
    expect(refresh.statements, describeTally(refresh)).toBeLessThanOrEqual(5);
    expect(refresh.commits, describeTally(refresh)).toBeLessThanOrEqual(5);
  });
});
