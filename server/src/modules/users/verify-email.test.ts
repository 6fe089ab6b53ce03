/**
 * The verification link of the e-mail: `GET /verify-email?token=…` serves the console's page and
 * spends nothing (mail scanners fetch links); `verifyEmail` spends it once and, when it cannot,
 * says why (expired, used, unknown) so that the page can offer the right way forward.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, tempDir } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';

const sink = await startSmtpSink();
afterAll(() => sink.stop());

const REGISTER = `mutation ($input: RegisterClinicInput!) {
  registerClinic(input: $input) { __typename ... on RegisterClinicSuccess { user { email } } }
}`;
const VERIFY = `mutation ($t: String!) {
  verifyEmail(token: $t) {
    __typename
    ... on VerifyEmailSuccess { user { emailVerified } }
    ... on InvalidCodeError { code reason message }
  }
}`;
const RESEND = 'mutation ($e: String!) { resendVerificationEmail(email: $e) { __typename } }';

/** A stand-in for the built console: the test only needs to recognise the page it serves. */
const consoleDir = tempDir('onramp-console-stub-');
writeFileSync(
  join(consoleDir, 'index.html'),
  '<!doctype html><title>Onramp console</title><div id="root"></div>',
);

const recipients = (message: { to?: { text: string } | { text: string }[] }) =>
  (Array.isArray(message.to) ? message.to : message.to ? [message.to] : []).map((a) => a.text).join(', ');
const linkOf = (text: string) => /(http\S+\/verify-email\?token=[A-Za-z0-9_-]+)/.exec(text)?.[1] ?? '';
const tokenOf = (link: string) => new URL(link).searchParams.get('token') ?? '';

describe('the e-mail verification link', async () => {
  const t = await startTestApp(
    { SMTP_URL: sink.url, CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' },
    { consoleDir },
  );
  const { prisma } = t.app.deps.db;
  let counter = 0;

  /** Registers a clinic and returns its admin's e-mail and the link of the mail sent to them. */
  async function registered(): Promise<{ email: string; link: string }> {
    counter += 1;
    const email = `verify${counter}-${Date.now()}@example.com`;
    const { body } = await t.gql(REGISTER, {
      input: {
        clinicName: `Clinique Verify ${counter}`,
        country: 'FR',
        adminEmail: email,
        adminPassword: 'a sturdy passphrase 42',
        adminFirstName: 'Marie',
        adminLastName: 'Curie',
        acceptedDocuments: CURRENT_ACCEPTANCES,
      },
    });
    expect(body.data).toMatchObject({ registerClinic: { __typename: 'RegisterClinicSuccess' } });
    const mail = await sink.waitFor((message) => recipients(message).includes(email));
    return { email, link: linkOf(mail.text ?? '') };
  }
  const verify = async (token: string) =>
    (await t.gql<{ verifyEmail: Record<string, unknown> }>(VERIFY, { t: token })).body.data?.verifyEmail;
  const verified = async (email: string) =>
    (await prisma.user.findUniqueOrThrow({ where: { email } })).emailVerifiedAt !== null;

  it('answers a bare GET of the link with the console page, and spends nothing', async () => {
    const { email, link } = await registered();
    expect(link.startsWith(`${t.config.publicUrl}/verify-email?token=`)).toBe(true);
    const path = new URL(link).pathname + new URL(link).search;
    // What a mail scanner does: fetch the URL, with or without HTML in Accept, even twice.
    for (const accept of ['*/*', 'text/html,application/xhtml+xml']) {
      const response = await fetch(`${t.url}${path}`, { headers: { accept } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/html');
      expect(response.headers.get('cache-control')).toBe('no-store');
      expect(await response.text()).toContain('<title>Onramp console</title>');
    }
    expect((await fetch(`${t.url}${path}`, { method: 'HEAD' })).status).toBe(200);
    expect(await verified(email)).toBe(false);
    // The link still works for the person who opens it.
    expect(await verify(tokenOf(link))).toEqual({
      __typename: 'VerifyEmailSuccess',
      user: { emailVerified: true },
    });
    expect(await verified(email)).toBe(true);
  });

  it('says why a link does not work: used, unknown, expired', async () => {
    const { link } = await registered();
    const token = tokenOf(link);
    expect(await verify(token)).toMatchObject({ __typename: 'VerifyEmailSuccess' });
    expect(await verify(token)).toMatchObject({
      __typename: 'InvalidCodeError',
      code: 'INVALID_CODE',
      reason: 'USED',
    });
    // Same length and alphabet as a real token, never issued.
    expect(await verify('A'.repeat(43))).toMatchObject({ reason: 'UNKNOWN', code: 'INVALID_CODE' });

    const other = await registered();
    await prisma.emailVerificationToken.updateMany({
      where: { user: { email: other.email } },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    const expired = await verify(tokenOf(other.link));
    expect(expired).toMatchObject({ reason: 'EXPIRED' });
    expect(expired?.message).toMatch(/expired/i);
    expect(await verified(other.email)).toBe(false);
  });

  it('calls a link replaced by resendVerificationEmail used, and the new one works', async () => {
    const first = await registered();
    // resendVerificationEmail sends at most one mail a minute per address.
    await prisma.mailOutbox.updateMany({
      where: { toAddress: first.email },
      data: { createdAt: new Date(Date.now() - 120_000) },
    });
    const before = sink.messages.length;
    expect((await t.gql(RESEND, { e: first.email })).body.data).toEqual({
      resendVerificationEmail: { __typename: 'ResendVerificationEmailSuccess' },
    });
    const mail = await sink.waitFor(
      (message) => sink.messages.indexOf(message) >= before && recipients(message).includes(first.email),
    );
    const fresh = linkOf(mail.text ?? '');
    expect(fresh).not.toBe(first.link);
    expect(await verify(tokenOf(first.link))).toMatchObject({ reason: 'USED' });
    expect(await verify(tokenOf(fresh))).toMatchObject({ __typename: 'VerifyEmailSuccess' });
  });

  it('spends a link once under a parallel burst of presses', async () => {
    const { email, link } = await registered();
    const answers = await Promise.all(Array.from({ length: 12 }, () => verify(tokenOf(link))));
    expect(answers.filter((answer) => answer?.__typename === 'VerifyEmailSuccess')).toHaveLength(1);
    expect(answers.filter((answer) => answer?.reason === 'USED')).toHaveLength(11);
    expect(await verified(email)).toBe(true);
    const user = await prisma.user.findUniqueOrThrow({ where: { email } });
    expect(await prisma.auditLog.count({ where: { action: 'user.email_verified', actorId: user.id } })).toBe(
      1,
    );
  });

  it('validates the token argument: empty, too long, NUL and control characters', async () => {
    for (const token of ['', 'x'.repeat(201), 'abc\u0000def', 'abc\u0007def', 'abc def', 'abc/def']) {
      expect(await verify(token)).toMatchObject({ __typename: 'ValidationError' });
    }
  });
});
