/**
 * One client address gets a share of the argon2 slots: its excess is refused with RATE_LIMITED
 * before anything is queued, and a sign-in from another address meanwhile is neither refused nor
 * kept waiting for a slot (observed on /metrics, never by timing).
 */
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { DEFAULT_HASH_SLOTS_PER_ADDRESS, HASH_CONCURRENCY, hashPassword } from './passwords.js';

const PASSWORD = 'a sturdy passphrase 42';
const SIGN_IN = `mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) {
  __typename } }`;

describe('per-address share of the password hashing slots', async () => {
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    TRUSTED_PROXIES: '1',
  });
  const email = `hash-share-${Date.now()}@example.com`;
  await t.app.deps.db.prisma.user.create({
    data: {
      email,
      firstName: 'H',
      lastName: 'S',
      role: 'STAFF',
      emailVerifiedAt: new Date(),
      passwordHash: await hashPassword(PASSWORD),
    },
  });
  const metric = async (name: string) => {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const value = new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1];
    if (value === undefined) throw new Error(`${name} is not on /metrics`);
    return Number(value);
  };
  const outcome = async (variables: Record<string, string>, address: string) => {
    const { status, body } = await t.gql<{ signInWithPassword: { __typename: string } }>(SIGN_IN, variables, {
      'x-forwarded-for': address,
    });
    return {
      status,
      outcome: body.data?.signInWithPassword.__typename ?? body.errors?.[0]?.extensions?.code,
    };
  };

  it('refuses the excess of one address at once and lets another address straight through', async () => {
    // With one slot the other address would share it: the share is half of the slots.
    expect(DEFAULT_HASH_SLOTS_PER_ADDRESS).toBeLessThan(Math.max(2, HASH_CONCURRENCY));
    const waitsBefore = await metric('onramp_password_hash_waits_total');
    const flood = Array.from({ length: 300 }, (_, i) =>
      outcome({ e: `nobody-${i}@example.com`, p: 'wrong password 1' }, '203.0.113.66'),
    );
    // The legitimate sign-in goes out in the middle of the flood.
    const legit = outcome({ e: email, p: PASSWORD }, '198.51.100.10');
    const answers = await Promise.all(flood);

    expect(await legit).toEqual({ status: 200, outcome: 'AuthSession' });
    const refused = answers.filter((answer) => answer.outcome === 'RATE_LIMITED');
    expect(refused.length).toBeGreaterThanOrEqual(280);
    expect(refused.every((answer) => answer.status === 429)).toBe(true);
    expect(await metric('onramp_password_hash_refusals_total')).toBeGreaterThanOrEqual(200);
    // Not one hash waited for a slot: the flood never held more than its share, and the
    // legitimate sign-in found a free slot at once.
    if (HASH_CONCURRENCY >= 2) {
      expect((await metric('onramp_password_hash_waits_total')) - waitsBefore).toBe(0);
    }
    expect(await metric('onramp_password_hashes_waiting')).toBe(0);
  });
});
