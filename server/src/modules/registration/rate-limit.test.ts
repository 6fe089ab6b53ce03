/**
 * registerClinic is rate-limited per client address and in total (REGISTRATION_IP_LIMIT,
 * REGISTRATION_TOTAL_LIMIT), counted before any work: a parallel burst gets exactly the limit
 * through, on PostgreSQL and on Redis; every refusal is RATE_LIMITED with retryAfter and HTTP
 * 429, and leaves nothing behind.
 */
import { describe, expect, it } from 'vitest';
import { startRedis, startTestApp, type TestApp } from '../../../test/harness.js';
import { type RegisterAnswer, registerClinic } from '../../../test/registration-flow.js';

const QUIET = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };

async function countClinics(t: TestApp): Promise<number> {
  const { body } = await t.gql<{ clinics: { edges: unknown[] } }>(
    '{ clinics(first: 100) { edges { node { id } } } }',
    {},
    await t.superAdmin(),
  );
  return body.data?.clinics.edges.length ?? -1;
}

function expectRefused(answer: RegisterAnswer) {
  expect(answer.status).toBe(429);
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
  expect(answer.errors?.[0]?.extensions).toMatchObject({
    code: 'RATE_LIMITED',
    retryAfter: expect.any(Number),
  });
  expect(answer.result).toBeUndefined();
}

const outcomes = (answers: RegisterAnswer[]) => {
  const other = answers.filter(
    (answer) =>
      answer.result?.__typename !== 'RegisterClinicSuccess' &&
      answer.errors?.[0]?.extensions?.code !== 'RATE_LIMITED',
  );
  expect(other).toEqual([]);
  return outcomesOf(answers);
};
const outcomesOf = (answers: RegisterAnswer[]) => ({
  registered: answers.filter((answer) => answer.result?.__typename === 'RegisterClinicSuccess'),
  refused: answers.filter((answer) => answer.errors?.[0]?.extensions?.code === 'RATE_LIMITED'),
});

describe.each([
  ['PostgreSQL', async () => ({})],
  ['Redis', async () => ({ REDIS_URL: (await startRedis()).url })],
])('on %s', async (_backend, backend) => {
  // Each app its own backend: the counters of one Redis are shared by every app using it.
  describe('per client address', async () => {
    const t = await startTestApp({ ...QUIET, ...(await backend()), REGISTRATION_IP_LIMIT: '3/1h' });

    it('12 parallel registrations from one address: 3 get through, 9 are refused before any work', async () => {
      const before = await countClinics(t);
      const answers = await Promise.all(Array.from({ length: 12 }, () => registerClinic(t)));
      const { registered, refused } = outcomes(answers);
      expect(registered).toHaveLength(3);
      expect(refused).toHaveLength(9);
      for (const answer of refused) expectRefused(answer);
      expect((await countClinics(t)) - before).toBe(3);
      // Refused e-mails were never taken: each can register from elsewhere later.
    });
  });

  describe('in total', async () => {
    const t = await startTestApp({
      ...QUIET,
      ...(await backend()),
      TRUSTED_PROXIES: '1',
      REGISTRATION_IP_LIMIT: '100/1h',
      REGISTRATION_TOTAL_LIMIT: '4/1h',
    });

    it('12 parallel registrations from 12 addresses: 4 get through in all', async () => {
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          registerClinic(t, {}, { 'x-forwarded-for': `198.51.100.${i + 1}` }),
        ),
      );
      const { registered, refused } = outcomes(answers);
      expect(registered).toHaveLength(4);
      expect(refused).toHaveLength(8);
      for (const answer of refused) expectRefused(answer);
      expect(await countClinics(t)).toBe(4);
    });
  });
});

describe('invalid input', async () => {
  const t = await startTestApp({ ...QUIET, REGISTRATION_IP_LIMIT: '2/1h' });

  it('is refused by validation without spending the budget; an e-mail already taken spends it', async () => {
    for (let i = 0; i < 5; i += 1) {
      const answer = await registerClinic(t, { adminEmail: 'not an e-mail' });
      expect(answer.result?.__typename).toBe('ValidationError');
    }
    const first = await registerClinic(t);
    expect(first.result?.__typename).toBe('RegisterClinicSuccess');
    const again = await registerClinic(t, { adminEmail: first.result?.user?.email });
    expect(again.result?.__typename).toBe('EmailTakenError');
    expectRefused(await registerClinic(t));
  });
});
