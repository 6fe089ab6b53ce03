/**
 * The development start banner and its one-time sign-in link, through the real server process
 * (`node src/main.ts`): printed on standard output, never logged, single use, replaced at each
 * start, stored hashed; production prints none, creates none and accepts none.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTestDatabase, startTestApp, TEST_SECRETS, tempDir } from '../../../test/harness.js';
import { startServerProcess } from '../../../test/server-process.js';
import { SignInLinks } from './sign-in-links.js';

const SIGN_IN = `mutation ($t: String!) {
  signInWithLink(token: $t) {
    __typename
    ... on AuthSession { accessToken user { email role } }
    ... on Error { code message }
  }
}`;

async function gql<T>(url: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return ((await response.json()) as { data: T }).data;
}
const signIn = (url: string, token: string) =>
  gql<{ signInWithLink: { __typename: string; code?: string; user?: { email: string; role: string } } }>(
    url,
    SIGN_IN,
    { t: token },
  ).then((data) => data.signInWithLink);

const LINK = /(http:\/\/\S+)\/sign-in#link=([A-Za-z0-9_-]{43})/;
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

describe('the development start banner', async () => {
  const databaseUrl = await createTestDatabase('banner');
  // The test's own view of the same central database.
  const t = await startTestApp({ DATABASE_URL: databaseUrl, CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const adminEmail = t.config.adminEmail;
  const builtConsole = tempDir('onramp-console-stub-');
  writeFileSync(join(builtConsole, 'index.html'), '<!doctype html><title>Onramp console</title>');

  it('prints the console, GraphiQL and a one-time sign-in link on stdout, never in a log line', {
    timeout: 90_000,
  }, async () => {
    const server = await startServerProcess({
      ONRAMP_ENV: 'development',
      DATABASE_URL: databaseUrl,
      ONRAMP_CONSOLE_DIR: builtConsole,
    });
    const out = server.stdout();
    expect(out).toContain(`Console    ${server.url}/`);
    expect(out).toContain(`GraphiQL   ${server.url}/graphql`);
    const [, origin, token] = LINK.exec(out) ?? [];
    expect(origin).toBe(server.url);
    expect(out).toContain(`as ${adminEmail}; works once, for 15 minutes`);
    // Logs share the terminal in development; the token is on the banner's line only.
    const lines = out.split('\n').filter((line) => line.includes(token as string));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ {2}Sign in {4}http/);
    expect(server.stderr()).not.toContain(token);
    // Stored hashed.
    const row = await prisma.signInLink.findFirstOrThrow({ where: { usedAt: null } });
    expect(row.tokenHash).toBe(sha256(token as string));
    expect(row.expiresAt.getTime() - row.createdAt.getTime()).toBe(15 * 60_000);

    expect(await gql(server.url, '{ signInLinkInTerminal }')).toEqual({ signInLinkInTerminal: true });
    expect(await signIn(server.url, token as string)).toMatchObject({
      __typename: 'AuthSession',
      user: { email: adminEmail, role: 'SUPER_ADMIN' },
    });
    // Single use.
    expect(await signIn(server.url, token as string)).toMatchObject({
      __typename: 'InvalidCodeError',
      code: 'INVALID_CODE',
    });
    const audited = await prisma.auditLog.findFirst({
      where: { action: 'auth.sign_in' },
      orderBy: { id: 'desc' },
    });
    expect(audited?.data).toEqual({ method: 'sign_in_link' });
    expect(JSON.stringify(audited?.data)).not.toContain(token);
    await server.stop();
  });

  it('issues a fresh link at each start: the previous one stops working, the new one works once under a burst', {
    timeout: 120_000,
  }, async () => {
    // No console built: the link goes to `pnpm dev`'s console, and the banner says why.
    const unbuilt = { ONRAMP_ENV: 'development', DATABASE_URL: databaseUrl, ONRAMP_CONSOLE_DIR: tempDir() };
    const first = await startServerProcess(unbuilt);
    expect(first.stdout()).toContain('not built: pnpm dev serves it on http://localhost:5173');
    expect(LINK.exec(first.stdout())?.[1]).toBe('http://localhost:5173');
    const old = LINK.exec(first.stdout())?.[2] as string;
    await first.stop();
    const second = await startServerProcess(unbuilt);
    const fresh = LINK.exec(second.stdout())?.[2] as string;
    expect(fresh).not.toBe(old);
    expect(await signIn(second.url, old)).toMatchObject({ __typename: 'InvalidCodeError' });

    const answers = await Promise.all(Array.from({ length: 10 }, () => signIn(second.url, fresh)));
    expect(answers.filter((answer) => answer.__typename === 'AuthSession')).toHaveLength(1);
    expect(answers.filter((answer) => answer.__typename === 'InvalidCodeError')).toHaveLength(9);

    // An expired link is refused too.
    const issued = await new SignInLinks({ config: t.config, prisma }).issueForAdmin();
    await prisma.signInLink.updateMany({
      where: { tokenHash: sha256(issued.token) },
      data: { expiresAt: new Date(Date.now() - 1000) },
    });
    expect(await signIn(second.url, issued.token)).toMatchObject({ __typename: 'InvalidCodeError' });
    await second.stop();
  });

  it('validates the token: NUL, control characters, wrong length', async () => {
    for (const token of [
      '',
      'a'.repeat(42),
      'a'.repeat(44),
      `${'a'.repeat(42)}\u0000`,
      `${'a'.repeat(42)}\u0007`,
    ]) {
      expect(await signIn(t.url, token)).toMatchObject({ __typename: 'ValidationError' });
    }
  });

  it('prints no link in production, creates none, and refuses one made elsewhere', {
    timeout: 90_000,
  }, async () => {
    // A link left in the database by a development run against the same database.
    const leftover = await new SignInLinks({ config: t.config, prisma }).issueForAdmin();
    const before = await prisma.signInLink.count();
    const server = await startServerProcess({
      ONRAMP_ENV: 'production',
      DATABASE_URL: databaseUrl,
      SMTP_URL: 'smtp://127.0.0.1:2525',
      SMS_GATEWAY_URL: 'http://127.0.0.1:9/sms',
      ...TEST_SECRETS,
    });
    expect(server.stdout()).not.toMatch(/sign-in#link=|Sign in {4}/);
    expect(await prisma.signInLink.count()).toBe(before);
    expect(await gql(server.url, '{ signInLinkInTerminal }')).toEqual({ signInLinkInTerminal: false });
    expect(await signIn(server.url, leftover.token)).toMatchObject({ __typename: 'InvalidCodeError' });
    expect(
      await prisma.signInLink.count({ where: { tokenHash: sha256(leftover.token), usedAt: null } }),
    ).toBe(1);
    await expect(
      new SignInLinks({ config: { ...t.config, env: 'production' }, prisma }).issueForAdmin(),
    ).rejects.toThrow(/never issued in production/);
    await server.stop();
  });
});
