/**
 * Nothing tells a caller whether an e-mail has an account: resendVerificationEmail answers
 * before it does any work (its answer cannot wait on what it finds), and addClient neither says
 * whether the address has an account (hasAccount) nor links a user of another clinic, whose
 * exportMyData therefore never shows another clinic's client record.
 */
import { describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES, clinicWithAdmin, registerClinic } from '../../../test/registration-flow.js';
import { withClient } from '../../db/sql.js';

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

const ADD_CLIENT = `mutation ($input: AddClientInput!) { addClient(input: $input) {
  __typename ... on ClientRecord { clinicId email kind hasAccount } } }`;

async function addClient(t: TestApp, headers: Record<string, string>, clinicId: string, email: string) {
  const { body } = await t.gql<{ addClient: Record<string, unknown> & { __typename: string } }>(
    ADD_CLIENT,
    { input: { clinicId, kind: 'PERSON', email, firstName: 'Cli', lastName: 'Ent' } },
    headers,
  );
  const { __typename, ...data } = body.data?.addClient ?? { __typename: 'none' };
  return { __typename, data };
}

async function exportOf(headers: Record<string, string>) {
  const { body } = await t.gql<{ exportMyData: { clientRecords: { clinicId: string; email: string }[] } }>(
    '{ exportMyData }',
    {},
    headers,
  );
  return body.data?.exportMyData;
}

/** Signs in by e-mail code (read from the dev mailbox once delivered). */
async function signInByCode(email: string) {
  await t.gql('mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', { e: email });
  const admin = await t.superAdmin();
  let code = '';
  await expect
    .poll(async () => {
      const { body } = await t.gql<{ devMailbox: { kind: string; text: string }[] }>(
        'query ($to: String!) { devMailbox(to: $to) { kind text } }',
        { to: email },
        admin,
      );
      code =
        /\b(\d{6})\b/.exec(body.data?.devMailbox.find((m) => m.kind === 'login_code')?.text ?? '')?.[1] ?? '';
      return code;
    })
    .toMatch(/^\d{6}$/);
  const { body } = await t.gql<{ signInWithCode: { accessToken?: string } }>(
    `mutation ($e: String!, $c: String!, $a: [AcceptedDocumentInput!]) {
      signInWithCode(email: $e, code: $c, acceptedDocuments: $a) { ... on AuthSession { accessToken } } }`,
    // A client's first sign-in accepts the documents (docs/decisions/056).
    { e: email, c: code, a: CURRENT_ACCEPTANCES },
  );
  return { authorization: `Bearer ${body.data?.signInWithCode.accessToken}` };
}

describe('addClient', () => {
  it('answers the same for an address with an account elsewhere and an unknown one, and links neither', async () => {
    const a = await clinicWithAdmin(t);
    const b = await clinicWithAdmin(t);
    const known = await addClient(t, a.headers, a.clinic.id, b.user.email);
    const unknown = await addClient(t, a.headers, a.clinic.id, `nobody-${Date.now()}@example.com`);
    expect(known?.__typename).toBe('ClientRecord');
    expect(known?.data?.hasAccount).toBe(false);
    expect(unknown?.data?.hasAccount).toBe(false);
    expect(Object.keys(known?.data ?? {})).toEqual(Object.keys(unknown?.data ?? {}));
    // Clinic B's admin does not see clinic A's record of them.
    const exported = await exportOf(b.headers);
    expect(exported?.clientRecords.filter((record) => record.clinicId === a.clinic.id)).toEqual([]);
  });

  it('a client of two clinics gets a user of one of them, linked to that clinic’s record only', async () => {
    const a = await clinicWithAdmin(t);
    const b = await clinicWithAdmin(t);
    const email = `twice-${Date.now()}@example.com`;
    await addClient(t, a.headers, a.clinic.id, email);
    await addClient(t, b.headers, b.clinic.id, email);
    const client = await signInByCode(email);
    const exported = (await exportOf(client)) as unknown as {
      clinic: { id: string };
      clientRecords: { clinicId: string }[];
    };
    expect(exported.clientRecords.map((record) => record.clinicId)).toEqual([exported.clinic.id]);
    // Clinic B's record stayed unlinked: adding it again there says nothing about the account.
    const { rows } = await withClient(t.app.deps.db.centralUrl, (db) =>
      db.query<{ clinic_id: string; linked: boolean }>(
        'SELECT clinic_id::text, user_id IS NOT NULL AS linked FROM client_records WHERE email = $1 ORDER BY created_at',
        [email],
      ),
    );
    expect(rows).toEqual([
      { clinic_id: a.clinic.id, linked: true },
      { clinic_id: b.clinic.id, linked: false },
    ]);
  });
});

describe('resendVerificationEmail', () => {
  it('answers before doing any work: its answer does not wait on what the e-mail turns out to be', async () => {
    const registered = await registerClinic(t);
    const email = registered.result?.user?.email as string;
    const { centralUrl } = t.app.deps.db;
    // The registration's own mail is older than the one-per-minute cooldown.
    await withClient(centralUrl, (db) =>
      db.query("UPDATE mail_outbox SET created_at = now() - interval '2 minutes' WHERE to_address = $1", [
        email,
      ]),
    );
    const RESEND =
      'mutation ($e: String!) { resendVerificationEmail(email: $e) { __typename ... on ResendVerificationEmailSuccess { accepted } } }';
    await withClient(centralUrl, async (locker) => {
      // While the work it would do for a known, unverified e-mail cannot run…
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE mail_outbox IN ACCESS EXCLUSIVE MODE');
      // …the answer still comes, the same as for an unknown e-mail.
      const answers = await Promise.race([
        Promise.all([t.gql(RESEND, { e: email }), t.gql(RESEND, { e: `nobody-${Date.now()}@example.com` })]),
        new Promise<'blocked'>((resolve) => setTimeout(() => resolve('blocked'), 10_000)),
      ]);
      expect(answers).not.toBe('blocked');
      if (answers !== 'blocked') {
        expect(answers[0].body).toEqual(answers[1].body);
        expect(answers[0].body).toEqual({
          data: { resendVerificationEmail: { __typename: 'ResendVerificationEmailSuccess', accepted: true } },
        });
      }
      await locker.query('COMMIT');
    });
    // The work happens after: a second verification e-mail goes out.
    await expect
      .poll(async () => {
        const { rows } = await withClient(centralUrl, (db) =>
          db.query("SELECT 1 FROM mail_outbox WHERE to_address = $1 AND kind = 'email_verification'", [
            email,
          ]),
        );
        return rows.length;
      })
      .toBe(2);
  });
});
