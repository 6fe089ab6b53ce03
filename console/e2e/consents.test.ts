/**
 * Consents in the console, in a real browser against a real server: the sign-in page answers
 * ConsentRequired with the documents to accept and signs in with them (the password was not
 * asked again), and a clinic's page shows what its admin accepted and when.
 */
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { startTestApp, type TestApp } from '../../server/test/harness.js';
import { clinicWithAdmin } from '../../server/test/registration-flow.js';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole();
const newBrowserPage = browserPages();

/** A page signed in as the super-admin with a one-time link. */
async function signedIn(t: TestApp): Promise<Page> {
  const page = await newBrowserPage();
  const { token } = await new SignInLinks({ config: t.config, prisma: t.app.deps.db.prisma }).issueForAdmin();
  await page.goto(`${t.url}/sign-in#link=${token}`);
  await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
  return page;
}

describe('consents in the console', async () => {
  const t = await startTestApp(
    { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' },
    { consoleDir },
  );
  const { prisma } = t.app.deps.db;

  it('asks for a changed document at sign-in and signs in once it is accepted', {
    timeout: 90_000,
  }, async () => {
    const { user } = await clinicWithAdmin(t);
    // The admin accepted an older privacy notice than the configured one.
    await prisma.consent.updateMany({
      where: { userId: user.id, document: 'PRIVACY' },
      data: { version: '2025-06' },
    });
    const page = await newBrowserPage();
    await page.goto(`${t.url}/sign-in`);
    await page.getByRole('button', { name: 'Sign in with a password instead' }).click();
    await page.getByLabel('E-mail').fill(user.email);
    await page.getByLabel('Password').fill('a sturdy passphrase 42');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();

    await page.getByRole('heading', { name: 'Accept the documents to continue' }).waitFor();
    const documents = page.getByTestId('consent-documents');
    expect(await documents.textContent()).toContain('I accept the Privacy notice (version 2026-01) — new');
    expect(await documents.textContent()).toContain('I accept the Terms of use (version 2026-01)');
    const submit = page.getByRole('button', { name: 'Accept and sign in' });
    // Nothing is sent before every document is ticked.
    expect(await submit.isDisabled()).toBe(true);
    await page.getByLabel('I accept the Privacy notice (version 2026-01)').check();
    expect(await submit.isDisabled()).toBe(true);
    await page.getByLabel('I accept the Terms of use (version 2026-01)').check();
    await submit.click();

    await page
      .getByRole('heading', { name: 'Accept the documents to continue' })
      .waitFor({ state: 'detached' });
    expect(await page.getByRole('alert').count()).toBe(0);
    const privacy = await prisma.consent.findMany({ where: { userId: user.id, document: 'PRIVACY' } });
    expect(privacy.map((row) => row.version).sort()).toEqual(['2025-06', '2026-01']);
    const signIn = await prisma.auditLog.findFirst({
      where: { action: 'auth.sign_in', actorId: user.id, data: { path: ['method'], equals: 'password' } },
    });
    expect(signIn).not.toBeNull();
    await page.close();
  });

  it('offers to accept the privacy notice again after it was withdrawn', { timeout: 90_000 }, async () => {
    const { user, headers } = await clinicWithAdmin(t);
    await t.gql('mutation { withdrawConsent(document: PRIVACY) { __typename } }', undefined, headers);
    const page = await newBrowserPage();
    await page.goto(`${t.url}/sign-in`);
    await page.getByRole('button', { name: 'Sign in with a password instead' }).click();
    await page.getByLabel('E-mail').fill(user.email);
    await page.getByLabel('Password').fill('a sturdy passphrase 42');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    const documents = page.getByTestId('consent-documents');
    await documents.waitFor();
    expect(await documents.textContent()).toContain('You withdrew your consent to the privacy notice');
    expect(await documents.textContent()).toContain(
      'I accept the Privacy notice (version 2026-01) — withdrawn',
    );
    await page.getByLabel('I accept the Privacy notice (version 2026-01)').check();
    await page.getByLabel('I accept the Terms of use (version 2026-01)').check();
    await page.getByRole('button', { name: 'Accept and sign in' }).click();
    await documents.waitFor({ state: 'detached' });
    const open = await prisma.consent.count({
      where: { userId: user.id, document: 'PRIVACY', withdrawnAt: null },
    });
    expect(open).toBe(1);
    await page.close();
  });

  it("shows the admin's consents on the clinic's page", { timeout: 90_000 }, async () => {
    const { clinic, headers } = await clinicWithAdmin(t);
    await t.gql('mutation { withdrawConsent(document: TERMS) { __typename } }', undefined, headers);
    const page = await signedIn(t);
    await page.goto(`${t.url}/clinics/${clinic.id}`);
    const consents = page.getByTestId('clinic-admin-consents');
    await consents.getByRole('heading', { name: "Admin's consents" }).waitFor();
    const rows = consents.locator('tbody tr');
    expect(await rows.count()).toBe(2);
    const terms = consents.getByRole('row', { name: /Terms of use/ });
    expect(await terms.locator('td[data-label="Version"]').textContent()).toBe('2026-01');
    expect(await terms.locator('td[data-label="Accepted"]').textContent()).toMatch(/\d{4}/);
    expect(await terms.locator('td[data-label="Withdrawn"]').textContent()).toMatch(/\d{4}/);
    const privacy = consents.getByRole('row', { name: /Privacy notice/ });
    expect(await privacy.locator('td[data-label="Withdrawn"]').textContent()).toBe('—');
    await page.close();
  });
});
