/**
 * What one e-mail code sign-in sends to the central PostgreSQL, pool warm (issue 16): statements
 * and commits of requestLoginCode (its delivery included) and signInWithCode, counted on the pg
 * clients of the central database inside the flow's own async context, so the app's background
 * work is not counted. The ceilings are the figures measured (bench/README.md, `otp`): a check
 * that stops being made in the statement of its neighbour fails them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { mailedCode } from '../../../test/registration-flow.js';
import { countStatements, describeTally } from '../../../test/statements.js';

describe('round trips of one e-mail code sign-in', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const { auth } = t.app.deps;
  const counter = countStatements(new URL(t.config.databaseUrl ?? '').pathname.slice(1));
  afterAll(() => counter.restore());

  let n = 0;
  /** One flow of the benchmark's shape: a verified user without a clinic, counted per call. */
  async function flowCounted() {
    n += 1;
    const email = `round-trip-code-${n}-${Date.now()}@example.com`;
    await prisma.user.create({
      data: { email, firstName: 'Ada', lastName: 'Lovelace', role: 'STAFF', emailVerifiedAt: new Date() },
    });
    const { tally: request } = await counter.count(async () => {
      await auth.codes.request(email, '127.0.0.1');
      await auth.codes.idle(); // the delivery, started in this context
    });
    const code = await mailedCode(t, email);
    const { value: session, tally: signIn } = await counter.count(() =>
      auth.signInWithCode(email, code, { ip: '127.0.0.1' }),
    );
    expect(session).toHaveProperty('accessToken');
    return { request, signIn };
  }

  it('sends at most the measured statements and commits, pool warm', async () => {
    await flowCounted(); // warm: pool connections, compiled queries
    const { request, signIn } = await flowCounted();
    // Measured: before issue 16's second pass a request took 4 statements (the address's send
    // limit, the user lookup beside the code's upsert, then the delivery's outbox row and audit
    // entry) and a sign-in 5 (count the attempt, read the user, read their consents, spend the
    // code, write the session). Now the upsert brings the user back (docs/decisions/062), the
    // attempt's statement the user and their consents, and the statement that spends the code
    // writes the session and its audit entry.
    expect(request.statements, describeTally(request)).toBeLessThanOrEqual(3);
    expect(request.commits, describeTally(request)).toBeLessThanOrEqual(3);
    expect(signIn.statements, describeTally(signIn)).toBeLessThanOrEqual(2);
    expect(signIn.commits, describeTally(signIn)).toBeLessThanOrEqual(2);
    // And none of them through Prisma's engine (~0.4 ms of CPU each, bench/README.md `otp`): the
    // code's upsert, the delivery's record, the attempt and the spending go through the pool.
    expect(request.viaEngine, describeTally(request)).toBe(0);
    expect(signIn.viaEngine, describeTally(signIn)).toBe(0);
  });
});
