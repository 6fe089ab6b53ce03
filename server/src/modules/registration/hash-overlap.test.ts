/**
 * Strict mode computes the admin's password hash beside the run (decision 079): the run makes the
 * clinic's database while argon2 works, and commit writes the hash with READY. Held or failed
 * hashes show what that promises: nothing waits for the hash but the commit, a user without its
 * hash can never sign in, and a hash that fails undoes the registration like any failed step.
 */
import argon2 from 'argon2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestApp, type TestApp } from '../../../test/harness.js';
import { REGISTER, registrationInput, signIn, verifyEmail } from '../../../test/registration-flow.js';

const PASSWORD = 'a sturdy passphrase 42';

/** Makes the next argon2 hash wait for `release()` (then hash for real), or fail with `fail()`. */
function holdNextHash() {
  const real = argon2.hash.bind(argon2);
  let release!: () => void;
  let fail!: (error: Error) => void;
  const gate = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  let started = false;
  vi.spyOn(argon2, 'hash').mockImplementationOnce(async (...args: Parameters<typeof argon2.hash>) => {
    started = true;
    await gate;
    return real(...args);
  });
  return { release, fail, started: () => started };
}

async function stepsOf(t: TestApp, email: string): Promise<{ name: string; status: string }[]> {
  return t.app.deps.db.prisma.$queryRaw<{ name: string; status: string }[]>`
    SELECT s.name, s.status::text FROM provisioning_steps s
    JOIN provisioning_runs r ON r.id = s.run_id
    JOIN users u ON u.clinic_id = r.clinic_id
    WHERE u.email = ${email} ORDER BY s.started_at`;
}

/** `probe`'s value once it has one, polled (vitest's `vi.waitFor`); fails naming `what`. */
function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  return vi.waitFor(
    async () => {
      const found = await probe();
      if (found === undefined) throw new Error(`not yet: ${what}`);
      return found;
    },
    { timeout: 10_000, interval: 25 },
  );
}

async function passwordSignIn(t: TestApp, email: string): Promise<string | undefined> {
  const { body } = await t.gql<{ signInWithPassword: { __typename: string } }>(
    'mutation ($email: String!, $password: String!) { signInWithPassword(email: $email, password: $password) { __typename } }',
    { email, password: PASSWORD },
  );
  return body.data?.signInWithPassword.__typename;
}

describe('strict registration: the password hash beside the run', () => {
  afterEach(() => vi.restoreAllMocks());

  it('makes the clinic while the hash is held, and writes the hash at commit', async () => {
    const t = await startTestApp({ REGISTRATION_MODE: 'strict' });
    const held = holdNextHash();
    const input = registrationInput();
    const answer = t.gql<{ registerClinic: { __typename: string; status?: string } }>(REGISTER, { input });

    // Every step before commit is done while argon2 still holds the hash.
    const steps = await until('the run reaches its commit', async () => {
      const rows = await stepsOf(t, input.adminEmail);
      return rows.some((row) => row.name === 'ssl' && row.status === 'SUCCEEDED') ? rows : undefined;
    });
    expect(held.started()).toBe(true);
    expect(steps.map((row) => row.name)).not.toContain('commit');
    // Meanwhile the admin exists without a password: no sign-in can use it.
    const user = await t.app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: input.adminEmail } });
    expect(user.passwordHash).toBeNull();
    expect(await passwordSignIn(t, input.adminEmail)).not.toBe('AuthSession');

    held.release();
    const { body } = await answer;
    expect(body.data?.registerClinic).toMatchObject({ __typename: 'RegisterClinicSuccess', status: 'READY' });
    const stored = await t.app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: input.adminEmail } });
    expect(await argon2.verify(stored.passwordHash ?? '', PASSWORD)).toBe(true);
    await verifyEmail(t, input.adminEmail);
    await expect(signIn(t, input.adminEmail)).resolves.toHaveProperty('authorization');
  });

  it('undoes the registration when the hash fails, with a typed error and nothing left', async () => {
    const t = await startTestApp({ REGISTRATION_MODE: 'strict' });
    const held = holdNextHash();
    const input = registrationInput();
    const answer = t.gql<{ registerClinic: { __typename: string; step?: string } }>(
      `mutation ($input: RegisterClinicInput!) { registerClinic(input: $input) {
        __typename ... on ProvisioningFailedError { step } } }`,
      { input },
    );
    await until('the hash has started', async () => (held.started() ? true : undefined));
    held.fail(new Error('argon2 out of memory'));

    const { status, body } = await answer;
    expect(status).toBe(200);
    expect(body.data?.registerClinic).toEqual({ __typename: 'ProvisioningFailedError', step: 'commit' });
    const prisma = t.app.deps.db.prisma;
    expect(await prisma.user.count({ where: { email: input.adminEmail } })).toBe(0);
    expect(await prisma.clinic.count({ where: { name: input.clinicName } })).toBe(0);
    // The failure was ours, not the caller's: the same registration goes through at once.
    const again = await t.gql<{ registerClinic: { __typename: string } }>(REGISTER, { input });
    expect(again.body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
  });

  it('hybrid mode writes the hash with the user, as a later attempt needs it', async () => {
    const t = await startTestApp({ REGISTRATION_MODE: 'hybrid' });
    const held = holdNextHash();
    const input = registrationInput();
    const answer = t.gql<{ registerClinic: { __typename: string } }>(REGISTER, { input });
    await until('the hash has started', async () => (held.started() ? true : undefined));
    // Nothing is created before the hash: no half-made admin for a later attempt to find.
    expect(await t.app.deps.db.prisma.user.count({ where: { email: input.adminEmail } })).toBe(0);
    held.release();
    expect((await answer).body.data?.registerClinic.__typename).toBe('RegisterClinicSuccess');
    const stored = await t.app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: input.adminEmail } });
    expect(await argon2.verify(stored.passwordHash ?? '', PASSWORD)).toBe(true);
  });
});
