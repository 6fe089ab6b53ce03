/**
 * The console in a real browser (Debian's chromium through playwright-core) against a real
 * server: embedded PostgreSQL, SMTP sink, the console built from source. Nothing is mocked.
 * Three servers: the test harness's app (most pages), one whose central database is stopped
 * mid-test (outages, the dev mailbox and its links), and the real process `node src/main.ts` in
 * development (its start banner's sign-in link).
 *
 * With SCREENSHOTS=1 (`pnpm screenshots`) the tests also write docs/screenshots/*.png at 1280 px.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureDatabase } from '../../server/src/db/database.js';
import { databaseUrl, quoteIdent, withClient } from '../../server/src/db/sql.js';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { base32Decode, currentStep, totpAt } from '../../server/src/modules/auth/totp.js';
import { verifyWebhookSignature } from '../../server/src/modules/webhooks/signature.js';
import {
  createTestDatabase,
  startExtraPostgres,
  startTestAppAtPublicUrl,
  type TestApp,
} from '../../server/test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../server/test/registration-flow.js';
import { startServerProcess } from '../../server/test/server-process.js';
import { startSmtpSink } from '../../server/test/smtp-sink.js';
import { browserPages, builtConsole } from './browser.js';

const SCREENSHOTS = process.env.SCREENSHOTS === '1';
const SCREENSHOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/screenshots');
const PASSWORD = 'correct horse battery staple';

const REGISTER = `mutation ($input: RegisterClinicInput!) {
  registerClinic(input: $input) {
    __typename
    ... on RegisterClinicSuccess { clinic { id name } }
    ... on Error { code message }
  }
}`;

interface Registered {
  registerClinic: { __typename: string; clinic?: { id: string; name: string } };
}

const consoleDir = builtConsole();

const newPage = browserPages();
const shotOf = async (page: Page, name: string) => {
  if (!SCREENSHOTS) return;
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`), fullPage: true });
};
const registerOn = async (app: TestApp, clinicName: string, adminEmail: string) => {
  const { body } = await app.gql<Registered>(REGISTER, {
    input: {
      clinicName,
      country: 'FR',
      adminEmail,
      adminPassword: PASSWORD,
      adminFirstName: 'Ada',
      adminLastName: 'Lovelace',
      acceptedDocuments: CURRENT_ACCEPTANCES,
    },
  });
  return body.data?.registerClinic;
};
/** The recipients of a parsed message, as text. */
const recipients = (message: { to?: { text: string } | { text: string }[] }) =>
  (Array.isArray(message.to) ? message.to : message.to ? [message.to] : []).map((a) => a.text).join(', ');
const VERIFY_LINK = /(http\S+\/verify-email\?token=[A-Za-z0-9_-]+)/;

describe('the admin console in a browser', async () => {
  const sink = await startSmtpSink();
  afterAll(() => sink.stop());
  // The links of the e-mails (PUBLIC_URL) are this server's, verbatim.
  const t = await startTestAppAtPublicUrl(
    {
      SMTP_URL: sink.url,
      // The periodic sweep publishes clinicHealthChanged; a second keeps the test short.
      CLINIC_HEALTH_INTERVAL_SECONDS: '1',
      CLINIC_POOL_SIZE: '0',
      // The webhook test's receiver listens on 127.0.0.1.
      WEBHOOK_ALLOW_PRIVATE_TARGETS: '1',
    },
    { consoleDir },
  );
  const admin = await t.superAdmin();

  let page: Page;
  /** The clinic registered while the live feed watched; later tests break and repair it. */
  let clinic: { id: string; name: string; databaseName: string };

  beforeAll(async () => {
    page = await newPage();
  });

  const shot = (name: string) => shotOf(page, name);
  const register = (clinicName: string, adminEmail: string) => registerOn(t, clinicName, adminEmail);
  /** Set once signed in; still there at the end proves nothing reloaded the page. */
  const markPage = () => page.evaluate(() => Object.assign(window, { onrampNoReload: true }));
  const notReloaded = () =>
    page.evaluate(() => (window as { onrampNoReload?: boolean }).onrampNoReload === true);

  it('signs the super-admin in with the code e-mailed to them', { timeout: 60_000 }, async () => {
    await page.goto(t.url);
    await page.getByLabel('E-mail').fill(t.config.adminEmail);
    // No start banner outside development, so no word of one.
    await page.getByRole('button', { name: 'Send me a code' }).waitFor();
    expect(await page.getByTestId('terminal-link-hint').count()).toBe(0);
    await page.getByRole('button', { name: 'Send me a code' }).click();
    const mail = await sink.waitFor((message) => message.subject === 'Your Onramp sign-in code');
    const code = /\b(\d{6})\b/.exec(mail.text ?? '')?.[1];
    expect(code).toMatch(/^\d{6}$/);

    await page.getByLabel('Code from the e-mail').fill('000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toMatch(/code/i);

    await page.getByLabel('Code from the e-mail').fill(code as string);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    expect(await page.getByText(t.config.adminEmail).isVisible()).toBe(true);
    await markPage();
  });

  it('shows a registration in the live feed as its steps happen', { timeout: 60_000 }, async () => {
    await page.getByRole('link', { name: 'Live feed' }).click();
    await page.getByRole('heading', { name: 'Live provisioning' }).waitFor();
    await page.getByText('No provisioning run recorded yet').waitFor();
    await expect.poll(() => page.getByTestId('live-indicator').getAttribute('data-state')).toBe('live');

    const answer = await register('Clinique du Lac', 'lac@example.com');
    expect(answer?.__typename).toBe('RegisterClinicSuccess');
    const { body } = await t.gql<{ clinic: typeof clinic }>(
      'query ($id: ID!) { clinic(id: $id) { id name databaseName } }',
      { id: answer?.clinic?.id },
      admin,
    );
    clinic = body.data?.clinic as typeof clinic;

    const card = page.locator('article.run-card').filter({ hasText: 'Clinique du Lac' });
    await card.waitFor({ timeout: 10_000 });
    for (const step of [
      'central_records',
      'create_database',
      'migrate_database',
      'verify_database',
      'commit',
    ]) {
      await expect.poll(() => card.locator(`li[data-step="${step}"]`).textContent()).toContain('SUCCEEDED');
    }
    expect(await card.getByTestId('run-status').textContent()).toBe('Succeeded');
    expect(await notReloaded()).toBe(true);
  });

  it('shows a failing registration fail and roll back, step by step', { timeout: 60_000 }, async () => {
    await t.gql('mutation { injectFault(step: seed_provider) { pending } }', {}, admin);
    const answer = await register('Clinique Fragile', 'fragile@example.com');
    expect(answer?.__typename).toBe('ProvisioningFailedError');

    // The newest card; the clinic no longer exists once central_records is undone.
    const card = page.locator('article.run-card').first();
    await expect.poll(() => card.getByTestId('run-status').textContent()).toBe('Failed');
    await expect.poll(() => card.locator('li[data-step="seed_provider"]').textContent()).toContain('FAILED');
    for (const step of ['central_records', 'create_database', 'migrate_database', 'verify_database']) {
      await expect.poll(() => card.locator(`li[data-step="${step}"]`).textContent()).toContain('ROLLED BACK');
    }
    // No link to a clinic that is gone (its name shows when the lookup beat the undo).
    await expect.poll(() => card.locator('h2 a').count()).toBe(0);
    expect(await page.locator('article.run-card').count()).toBe(2);
    expect(await notReloaded()).toBe(true);
    // Named from the start, failure and error on the card.
    expect(await card.locator('h2').textContent()).toContain('Clinique Fragile');
    expect(await card.locator('.run-error').textContent()).toMatch(/^seed_provider: /);
    await shot('live-feed');
  });

  it('keeps the feed across a reload: recorded runs, named, folded, filterable', {
    timeout: 60_000,
  }, async () => {
    await page.reload();
    await page.getByRole('heading', { name: 'Live provisioning' }).waitFor();
    const cards = page.locator('article.run-card');
    await expect.poll(() => cards.count()).toBe(2);
    const failed = cards.filter({ hasText: 'Clinique Fragile' });
    const succeeded = cards.filter({ hasText: 'Clinique du Lac' });
    expect(await failed.getByTestId('run-status').textContent()).toBe('Failed');
    expect(await failed.locator('.run-error').textContent()).toMatch(/^seed_provider: /);
    expect(await succeeded.getByTestId('run-status').textContent()).toBe('Succeeded');
    expect(await succeeded.locator('h2 a').getAttribute('href')).toBe(`/clinics/${clinic.id}`);
    expect(await page.getByText(/^Clinic [0-9a-f]{8}$/).count()).toBe(0);
    // History opens folded; a press shows the steps.
    expect(await failed.locator('li[data-step]').count()).toBe(0);
    await failed.getByRole('button', { name: /^Show \d+ steps$/ }).click();
    expect(await failed.locator('li[data-step="seed_provider"]').textContent()).toContain('FAILED');
    // Filters: by status, by name.
    await page.getByRole('button', { name: /^Failed \(1\)$/ }).click();
    await expect.poll(() => cards.count()).toBe(1);
    await page.getByRole('button', { name: /^All \(2\)$/ }).click();
    await page.getByLabel('Clinic', { exact: true }).fill('lac');
    await expect.poll(() => cards.count()).toBe(1);
    expect(await cards.first().textContent()).toContain('Clinique du Lac');
    await page.getByLabel('Clinic', { exact: true }).fill('');
    // The run's own page: its steps and error.
    await failed.getByRole('link', { name: 'Run details' }).click();
    await page.getByRole('heading', { name: 'Clinique Fragile', level: 1 }).waitFor();
    expect(await page.locator('.timeline-run').first().textContent()).toContain('seed_provider');
    await page.getByText('The clinic no longer exists.').waitFor();
    await page.getByRole('link', { name: 'Live feed' }).first().click();
    await cards.first().waitFor();
    await markPage();
  });

  it('turns a dropped database MISSING without reload, and Repair makes it HEALTHY', {
    timeout: 90_000,
  }, async () => {
    await page.getByRole('link', { name: 'Clinics' }).click();
    const row = page.locator(`tr[data-clinic-id="${clinic.id}"]`);
    const badge = row.locator('.badge');
    await expect.poll(() => badge.textContent(), { timeout: 10_000 }).toBe('HEALTHY');
    expect(await page.getByTestId('total-missing').textContent()).toBe('0');

    // From outside, as an operator's mistake would: the server only learns of it by checking.
    await withClient(inject('pgAdminUrl'), (client) =>
      client.query(`DROP DATABASE ${quoteIdent(clinic.databaseName)} WITH (FORCE)`),
    );
    await expect.poll(() => badge.textContent(), { timeout: 15_000, interval: 250 }).toBe('MISSING');
    expect(await page.getByTestId('total-missing').textContent()).toBe('1');
    expect(await notReloaded()).toBe(true);
    // A change arriving between two ticks of the clock is "now" or in the past, never "in 3 seconds".
    for (let i = 0; i < 6; i++) {
      expect(await row.getByTestId('last-check').textContent()).not.toMatch(/^in /);
      await page.waitForTimeout(500);
    }
    expect(await row.locator('td[data-label="Admin"]').textContent()).toBe('lac@example.com');
    expect(await row.locator('td[data-label="Created"]').textContent()).toMatch(/\d{4}$/);

    // Filters: MISSING only, then a search that matches nothing.
    await page.getByLabel('Database health').selectOption('MISSING');
    expect(await page.locator('tbody tr').count()).toBe(1);
    await page.getByLabel('Search').fill('no such clinic');
    await page.getByText('No clinic matches these filters.').waitFor();
    await page.getByLabel('Search').fill('');
    await page.getByLabel('Database health').selectOption('ALL');
    await row.waitFor(); // the list is read again for the cleared filters: the shot shows it
    await shot('clinics');

    await row.getByRole('link', { name: clinic.name }).click();
    await page.getByRole('heading', { name: clinic.name, level: 1 }).waitFor();
    await expect.poll(() => page.getByTestId('clinic-db-status').textContent()).toBe('MISSING');
    await page.getByText('database does not exist').first().waitFor();
    // Its admin, DNS record and certificate.
    expect(await page.getByTestId('clinic-admin').textContent()).toContain('lac@example.com');
    const dns = page.getByTestId('clinic-dns');
    expect(await dns.textContent()).toMatch(/clinique-du-lac\.onramp\.localhost.*A.*127\.0\.0\.1/);
    const certificate = page.getByTestId('clinic-certificate');
    expect(await certificate.textContent()).toMatch(/CN=.*\(builtin\).*in (89|90) days/);

    await page.getByRole('button', { name: 'Repair', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Repair ${clinic.name}?` });
    await dialog.waitFor();
    // A READY clinic's database gone: the confirmation says what repair will do to its data.
    expect(await dialog.getByTestId('data-loss-warning').textContent()).toContain(
      'its data is gone; repair creates an empty database',
    );
    await dialog.getByRole('button', { name: 'Repair now' }).click();
    const result = page.getByTestId('repair-result');
    await result.waitFor({ timeout: 30_000 });
    expect(await result.textContent()).toContain(`recreated database ${clinic.databaseName}`);
    expect(await result.getByTestId('data-lost').textContent()).toContain('Its data is gone');
    expect(await result.locator('.before-after > div').first().locator('.badge').textContent()).toBe(
      'MISSING',
    );
    expect(await result.locator('.before-after > div').last().locator('.badge').textContent()).toBe(
      'HEALTHY',
    );
    await expect.poll(() => page.getByTestId('clinic-db-status').first().textContent()).toBe('HEALTHY');
    // The registration's run and the repair, a REPAIR run of its own, are on the clinic's timeline
    // (who repaired is in the audit log, below).
    await page.getByRole('heading', { name: 'Provisioning runs and repairs' }).waitFor();
    const repair = page
      .locator('.timeline-run')
      .filter({ has: page.getByRole('heading', { name: /^repair/ }) });
    await repair.first().waitFor();
    expect(await repair.first().textContent()).toContain('create_database');
    expect(await page.locator('.timeline-run').filter({ hasText: 'register' }).textContent()).toContain(
      'commit',
    );
    await shot('clinic');

    await page.getByRole('link', { name: 'Clinics', exact: true }).first().click();
    await expect.poll(() => badge.textContent(), { timeout: 10_000 }).toBe('HEALTHY');
    expect(await notReloaded()).toBe(true);
  });

  it('shows metrics with the successful and the failed registration; a point opens its run', {
    timeout: 30_000,
  }, async () => {
    await page.getByRole('link', { name: 'Metrics' }).click();
    expect(new URL(page.url()).pathname).toBe('/provisioning-metrics');
    const totals = page.getByRole('region', { name: 'Provisioning totals' });
    await expect.poll(() => totals.textContent()).toMatch(/1\s*Successes/);
    expect(await totals.textContent()).toMatch(/1\s*Failures/);
    expect(await page.locator('.chart circle.chart-ok').count()).toBe(1);
    expect(await page.locator('.chart path.chart-failed').count()).toBe(1);
    expect(await page.getByRole('region', { name: 'Recent failed registrations' }).textContent()).toContain(
      'seed_provider',
    );
    await shot('metrics');
    await page
      .locator('.chart a.chart-point')
      .filter({ has: page.locator('path.chart-failed') })
      .click();
    await page.getByRole('heading', { name: 'Clinique Fragile', level: 1 }).waitFor();
    expect(await page.locator('.notice-error').first().textContent()).toContain('seed_provider');
    // A reload of the page is the console's, not Prometheus' text (which lives at /metrics).
    await page.goto(`${t.url}/provisioning-metrics`);
    await page.getByRole('heading', { name: 'Metrics', level: 1 }).waitFor();
  });

  it('lists audit entries and filters them by action family', { timeout: 30_000 }, async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { name: 'Audit log' }).waitFor();
    const actions = () => page.locator('tbody td[data-label="Action"]').allTextContents();
    await expect.poll(actions).toContain('clinic.repair');
    expect(await actions()).toContain('auth.sign_in');
    // Actors and clinics by name, with links.
    const repair = page.locator('tbody tr').filter({ hasText: 'clinic.repair' }).first();
    expect(await repair.locator('td[data-label="Actor"]').textContent()).toBe(
      `Platform Admin ${t.config.adminEmail}`,
    );
    expect(await repair.locator('td[data-label="Clinic"] a').textContent()).toBe('Clinique du Lac');
    expect(await repair.locator('td[data-label="Clinic"] a').getAttribute('href')).toBe(
      `/clinics/${clinic.id}`,
    );
    await shot('audit');
    /** The listed actions once the new filter's entries are in (never the empty list in between). */
    const settled = (accept: (action: string) => boolean) =>
      expect.poll(async () => {
        const listed = await actions();
        return listed.length > 0 && listed.every(accept);
      });
    await page.getByRole('button', { name: 'clinic', exact: true }).click();
    await settled((action) => action.startsWith('clinic.')).toBe(true);
    expect(await actions()).toContain('clinic.repair');
    // Registrations, successful and failed, are audited.
    await page.getByRole('button', { name: 'registration', exact: true }).click();
    await settled((action) => action.startsWith('registration.')).toBe(true);
    expect(await actions()).toContain('registration.completed');
    expect(await actions()).toContain('registration.failed');
    const failed = page.locator('tbody tr').filter({ hasText: 'registration.failed' });
    expect(await failed.locator('td[data-label="Clinic"]').textContent()).toBe('Clinique Fragile (gone)');
    // One actor's entries, from their name.
    await page.getByRole('button', { name: 'registration', exact: true }).click();
    await repair.locator('td[data-label="Actor"] a').click();
    await page.getByTestId('audit-scope').waitFor();
    await settled((action) => action !== 'registration.completed').toBe(true);
    expect(await actions()).toContain('clinic.repair');
  });

  it('verifies the e-mailed link in a browser on a press, and a bare fetch of it spends nothing', {
    timeout: 60_000,
  }, async () => {
    const mail = await sink.waitFor((message) => recipients(message).includes('lac@example.com'));
    const link = VERIFY_LINK.exec(mail.text ?? '')?.[1] as string;
    expect(link.startsWith(`${t.url}/verify-email?token=`)).toBe(true);
    const verified = async () =>
      (await t.app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: 'lac@example.com' } }))
        .emailVerifiedAt !== null;
    // A mail scanner: fetches the link, reads a page, spends nothing.
    const scanned = await fetch(link);
    expect(scanned.status).toBe(200);
    expect(await scanned.text()).toContain('<div id="root">');
    expect(await verified()).toBe(false);

    const visitor = await newPage();
    try {
      await visitor.goto(link);
      await visitor.getByRole('heading', { name: 'Confirm your e-mail address' }).waitFor();
      // Opening the page, even waiting on it, spends nothing either.
      await visitor.waitForTimeout(500);
      expect(await verified()).toBe(false);
      await shotOf(visitor, 'verify-email');
      await visitor.getByRole('button', { name: 'Confirm my e-mail address' }).click();
      await visitor.getByRole('heading', { name: 'Your e-mail address is confirmed' }).waitFor();
      expect(await verified()).toBe(true);
      expect(visitor.url()).not.toContain('token=');
      await visitor.getByRole('link', { name: 'Continue to sign-in' }).click();
      await visitor.getByRole('heading', { name: 'Sign in with an e-mail code' }).waitFor();
      expect(await visitor.getByLabel('E-mail').inputValue()).toBe('lac@example.com');

      // The same link again: used, with a way to get a new one.
      await visitor.goto(link);
      await visitor.getByRole('button', { name: 'Confirm my e-mail address' }).click();
      await visitor.getByRole('heading', { name: 'This link was already used' }).waitFor();
      await visitor.getByLabel('Your e-mail address').fill('lac@example.com');
      await visitor.getByRole('button', { name: 'Send me a new link' }).click();
      await visitor.getByText('If lac@example.com has an account waiting for confirmation').waitFor();
      // A link that never existed says so.
      await visitor.goto(`${t.url}/verify-email?token=${'A'.repeat(43)}`);
      await visitor.getByRole('button', { name: 'Confirm my e-mail address' }).click();
      await visitor.getByRole('heading', { name: 'This link is not valid' }).waitFor();
    } finally {
      await visitor.close();
    }
  });

  it('registers an application, shows its master key once, and lists the onboardings it starts', {
    timeout: 60_000,
  }, async () => {
    const start = (key: string, organization_name: string) =>
      fetch(`${t.url}/api/v1/onboarding/start`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-master-key': key },
        body: JSON.stringify({ email: 'erp@example.com', organization_name }),
      });
    /** Whether `secret` is anywhere in the page: markup, form values, web storage. */
    const exposed = (secret: string) =>
      page.evaluate(
        (text) =>
          document.documentElement.outerHTML.includes(text) ||
          [...document.querySelectorAll('input, textarea')].some((field) =>
            (field as HTMLInputElement).value.includes(text),
          ) ||
          [sessionStorage, localStorage].some((storage) =>
            Object.keys(storage).some((name) => storage.getItem(name)?.includes(text)),
          ),
        secret,
      );

    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
    await page.getByText('No applications yet').waitFor();

    await page.getByLabel('New application name').fill('Clinic ERP');
    await page.getByRole('button', { name: 'Register application' }).click();
    const panel = page.getByTestId('master-key-panel');
    await panel.waitFor();
    expect(await panel.textContent()).toContain('it will not be shown again');
    // Focus moves to the panel so that keyboard and screen-reader users meet it first.
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe(
      'master-key-panel',
    );
    const keyField = panel.getByLabel(/^Master key/);
    const key = await keyField.inputValue();
    expect(key).toMatch(/^mk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);

    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: t.url });
    await panel.getByRole('button', { name: 'Copy' }).click();
    await panel.getByText('Copied to the clipboard.').waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(key);
    await page.evaluate(() => navigator.clipboard.writeText(''));

    const row = page.locator('tr').filter({ hasText: 'Clinic ERP' });
    expect(await row.locator('td[data-label="Master key"]').textContent()).toBe(
      `${key.split('_').slice(0, 2).join('_')}_…`,
    );
    expect(await exposed(key)).toBe(true);
    // Shown, but kept nowhere else: not in web storage.
    expect(
      await page.evaluate(
        (text) =>
          [sessionStorage, localStorage].some((storage) =>
            Object.keys(storage).some((name) => storage.getItem(name)?.includes(text)),
          ),
        key,
      ),
    ).toBe(false);

    // The key works, over the integration guide's HTTP.
    const started = await start(key, 'Praxis Console');
    expect(started.status).toBe(201);
    const onboarding = (await started.json()) as { uuid: string; subdomain: string };

    // Once reloaded, the key is gone from the page, and the onboarding is counted.
    await page.reload();
    await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
    await row.waitFor();
    expect(await panel.count()).toBe(0);
    expect(await exposed(key)).toBe(false);

    await row.getByRole('link', { name: '1 onboardings of Clinic ERP' }).click();
    await page.getByRole('heading', { name: 'Onboardings of Clinic ERP' }).waitFor();
    const entry = page.locator(`tr[data-onboarding-id="${onboarding.uuid}"]`);
    await entry.waitFor();
    expect(await entry.getByTestId('onboarding-status').textContent()).toBe('PENDING');
    expect(await entry.getByTestId('onboarding-subdomain').textContent()).toBe(onboarding.subdomain);
    expect(await entry.textContent()).toContain('Praxis Console');

    // Rotation: confirmed, a new key shown once, the old one refused at once.
    await page.getByRole('link', { name: 'Applications' }).click();
    await row.getByRole('button', { name: 'Rotate the key of Clinic ERP' }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate the master key of Clinic ERP?' });
    await rotate.waitFor();
    await rotate.getByRole('button', { name: 'Rotate key' }).click();
    await panel.waitFor();
    const rotated = await panel.getByLabel(/^Master key/).inputValue();
    expect(rotated).toMatch(/^mk_/);
    expect(rotated).not.toBe(key);
    expect((await start(key, 'Refused')).status).toBe(401);
    const provisioned = await start(rotated, 'Praxis Rotated');
    expect(provisioned.status).toBe(201);
    const second = (await provisioned.json()) as { uuid: string };
    await panel.getByRole('button', { name: /hide it/ }).click();
    await expect.poll(() => panel.count()).toBe(0);
    expect(await exposed(rotated)).toBe(false);

    // The second onboarding is provisioned and completed, so the page has metadata to show.
    const call = (path: string, body: unknown) =>
      fetch(`${t.url}/api/v1/onboarding${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-master-key': rotated },
        body: JSON.stringify(body),
      });
    expect((await call('/provision', { uuid: second.uuid, generate_api_key: true })).status).toBe(200);
    expect((await call(`/${second.uuid}/complete`, { tenant_id: 'tenant_console' })).status).toBe(200);

    // Revocation: confirmed; the row says so and the key is refused.
    await row.getByRole('button', { name: 'Revoke the key of Clinic ERP' }).click();
    const revoke = page.getByRole('dialog', { name: 'Revoke the master key of Clinic ERP?' });
    await revoke.getByRole('button', { name: 'Revoke key' }).click();
    await expect.poll(() => row.locator('td[data-label="Master key"]').textContent()).toBe('REVOKED');
    expect((await start(rotated, 'Refused')).status).toBe(401);
    expect(await row.getByRole('button', { name: 'Revoke the key of Clinic ERP' }).isDisabled()).toBe(true);

    await page.getByRole('link', { name: 'Onboardings', exact: true }).click();
    await page.getByRole('heading', { name: 'Onboardings', exact: true, level: 1 }).waitFor();
    const done = page.locator(`tr[data-onboarding-id="${second.uuid}"]`);
    await done.waitFor();
    expect(await done.getByTestId('onboarding-status').textContent()).toBe('COMPLETED');
    const infrastructure = await done.locator('td[data-label="Infrastructure"]').textContent();
    // Its API credentials went with the application's revoked key (decision 087).
    expect(infrastructure).toMatch(/READY.*DNS✓ yes.*SSL✓ yes.*API key✗ no.*Attempts1/);
    expect(await done.locator('td[data-label="Tenant"]').textContent()).toMatch(
      /^tenant_console\s*completed/,
    );
    expect(await page.locator('tbody tr').count()).toBe(2);
    await shot('onboarding');

    await page.getByLabel('Status').selectOption('ACTIVATED');
    await page.getByText('No onboarding matches these filters.').waitFor();
    await page.getByLabel('Status').selectOption('PENDING');
    await expect.poll(() => page.locator('tbody tr').count()).toBe(1);
    expect(await entry.isVisible()).toBe(true);
  });

  it("shows an application's webhook deliveries with their attempts, and replays one", {
    timeout: 60_000,
  }, async () => {
    // A receiver that refuses the first delivery (500), then accepts.
    const received: { signature: string; body: string }[] = [];
    const statuses = [500];
    const receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        received.push({
          signature: String(req.headers['onramp-signature']),
          body: Buffer.concat(chunks).toString(),
        });
        res.writeHead(statuses.shift() ?? 200).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
      const registered = await t.gql<{
        registerApplication: { masterKey: string; application: { id: string } };
      }>(
        'mutation { registerApplication(name: "Hooked ERP") { ... on ApplicationKeyIssued { masterKey application { id } } } }',
        {},
        admin,
      );
      const { masterKey, application } = registered.body.data?.registerApplication ?? {};
      const created = await t.gql<{ createWebhookEndpoint: { secret: string } }>(
        `mutation ($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) {
           ... on CreateWebhookEndpointSuccess { secret } } }`,
        { input: { applicationId: application?.id, url: hookUrl, events: ['ONBOARDING_PROVISIONED'] } },
        admin,
      );
      const secret = created.body.data?.createWebhookEndpoint.secret ?? '';
      const call = (path: string, body: unknown) =>
        fetch(`${t.url}/api/v1/onboarding${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-master-key': masterKey ?? '' },
          body: JSON.stringify(body),
        });
      const { uuid } = (await (await call('/start', { email: 'hooks@example.com' })).json()) as {
        uuid: string;
      };
      expect((await call('/provision', { uuid })).status).toBe(200);
      await expect.poll(() => received.length).toBe(1);

      await page.getByRole('link', { name: 'Applications' }).click();
      await page.getByRole('heading', { name: 'Applications', level: 1 }).waitFor();
      await page.getByRole('button', { name: 'Webhooks of Hooked ERP' }).click();
      const section = page.getByRole('region', { name: 'Webhooks of Hooked ERP' });
      await section.getByText(hookUrl).first().waitFor();
      const rows = section.locator('tbody tr');
      await expect
        .poll(async () => {
          await section.getByRole('button', { name: 'Refresh' }).click();
          return rows.first().getByTestId('delivery-attempts').textContent();
        })
        .toMatch(/^1 · last: 500/);
      expect(await rows.first().getByTestId('delivery-status').textContent()).toBe('PENDING');

      await rows
        .first()
        .getByRole('button', { name: /^Replay delivery/ })
        .click();
      await section.getByText('Replay queued').waitFor();
      await expect.poll(() => received.length).toBe(2);
      await expect
        .poll(async () => {
          await section.getByRole('button', { name: 'Refresh' }).click();
          return rows.first().getByTestId('delivery-status').textContent();
        })
        .toBe('SUCCEEDED');
      expect(await rows.first().textContent()).toContain('(replay)');
      expect(await rows.count()).toBe(2);
      // The replay is the same event, signed afresh; both verify with the endpoint's secret.
      const [first, replay] = received;
      expect(replay?.body).toBe(first?.body);
      for (const delivery of received) {
        expect(verifyWebhookSignature(secret, delivery.signature, delivery.body).ok).toBe(true);
      }
      await shot('webhooks');
    } finally {
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('fits a phone-sized screen without sideways scrolling', { timeout: 30_000 }, async () => {
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.getByRole('link', { name: 'Clinics', exact: true }).click();
      const row = page.locator(`tr[data-clinic-id="${clinic.id}"]`);
      await row.waitFor();
      expect(await row.locator('.badge').isVisible()).toBe(true);
      expect(await overflow()).toBeLessThanOrEqual(0);
      await row.getByRole('link', { name: clinic.name }).click();
      await page.getByRole('button', { name: 'Repair', exact: true }).waitFor();
      expect(await overflow()).toBeLessThanOrEqual(0);
      await page.getByRole('link', { name: 'Live feed' }).click();
      await page.locator('article.run-card').first().waitFor();
      expect(await overflow()).toBeLessThanOrEqual(0);
      await page.getByRole('link', { name: 'Applications' }).click();
      await page.locator('tr').filter({ hasText: 'Clinic ERP' }).waitFor();
      expect(await overflow()).toBeLessThanOrEqual(0);
      await page.getByRole('link', { name: 'Onboardings', exact: true }).click();
      await page.locator('tr[data-onboarding-id]').first().waitFor();
      expect(await overflow()).toBeLessThanOrEqual(0);
    } finally {
      await page.setViewportSize({ width: 1280, height: 800 });
    }
  });

  it('signs in by password with the TOTP step, and tells a clinic admin the console is not theirs', {
    timeout: 60_000,
  }, async () => {
    // A clinic admin with 2FA, set up through the API.
    const verify = await sink.waitFor((message) =>
      JSON.stringify(message.to ?? '').includes('lac@example.com'),
    );
    const token = /verify-email\?token=([A-Za-z0-9_-]+)/.exec(verify.text ?? '')?.[1];
    await t.gql('mutation ($t: String!) { verifyEmail(token: $t) { __typename } }', { t: token });
    const session = await t.gql<{ signInWithPassword: { accessToken: string } }>(
      'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { ... on AuthSession { accessToken } } }',
      { e: 'lac@example.com', p: PASSWORD },
    );
    const auth = { authorization: `Bearer ${session.body.data?.signInWithPassword.accessToken}` };
    const setup = await t.gql<{ setupTwoFactor: { secret: string } }>(
      'mutation { setupTwoFactor { ... on SetupTwoFactorSuccess { secret } } }',
      {},
      auth,
    );
    const secret = base32Decode(setup.body.data?.setupTwoFactor.secret as string);
    const confirmed = await t.gql(
      'mutation ($c: String!) { confirmTwoFactor(code: $c) { __typename } }',
      {
        c: totpAt(secret, currentStep()),
      },
      auth,
    );
    expect(confirmed.body.data).toEqual({ confirmTwoFactor: { __typename: 'ConfirmTwoFactorSuccess' } });

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in with an e-mail code' }).waitFor();
    await page.getByRole('button', { name: 'Sign in with a password instead' }).click();
    await page.getByLabel('E-mail').fill('lac@example.com');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toBeTruthy();

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'Two-factor authentication' }).waitFor();
    // The code of the next step: the current one was spent by confirmTwoFactor.
    await page.getByLabel('Authenticator code').fill(totpAt(secret, currentStep() + 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('heading', { name: 'Platform operators only' }).waitFor();
  });
});

describe('the first hour on a fresh server: the dev mailbox, its links, and outages', async () => {
  // Its own PostgreSQL for the central database, stopped mid-test; no SMTP_URL: the dev mailbox.
  const central = await startExtraPostgres();
  await ensureDatabase(central.url, 'central');
  const t = await startTestAppAtPublicUrl(
    {
      DATABASE_URL: databaseUrl(central.url, 'central'),
      // The outage makes every component log its lost connection; the browser is what is tested.
      LOG_LEVEL: 'silent',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      CLINIC_POOL_SIZE: '0',
    },
    { consoleDir },
  );
  let page: Page;
  beforeAll(async () => {
    page = await newPage();
  });

  it('signs the super-admin in with a one-time link, and opens the e-mailed link from the Mailbox', {
    timeout: 60_000,
  }, async () => {
    const { token } = await new SignInLinks({
      config: t.config,
      prisma: t.app.deps.db.prisma,
    }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    expect(page.url()).not.toContain(token);

    expect((await registerOn(t, 'Clinique Boîte', 'boite@example.com'))?.__typename).toBe(
      'RegisterClinicSuccess',
    );
    await page.getByRole('link', { name: 'Mailbox' }).click();
    await page.getByLabel('Recipient e-mail').fill('boite@example.com');
    await page.getByRole('button', { name: 'Show' }).click();
    const link = page.locator('.message a[href*="/verify-email?token="]');
    await link.waitFor();
    const href = (await link.getAttribute('href')) as string;
    expect((await fetch(href)).status).toBe(200);
    // It opens in a tab of its own: the console's tab stays on the Mailbox, signed in.
    const [visitor] = await Promise.all([page.context().waitForEvent('page'), link.click()]);
    await visitor.getByRole('button', { name: 'Confirm my e-mail address' }).click();
    await visitor.getByRole('heading', { name: 'Your e-mail address is confirmed' }).waitFor();
    await visitor.close();
    expect(new URL(page.url()).pathname).toBe('/dev/mailbox');
    await page.getByRole('link', { name: 'Clinics', exact: true }).first().click();
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    // At 1280 px no menu entry runs under the account's e-mail (SMS outbox did, once Rollouts came).
    const account = await page.locator('.account').boundingBox();
    for (const entry of await page.locator('.topbar nav a').all()) {
      const box = await entry.boundingBox();
      const apart = !box || !account || box.x + box.width <= account.x || box.y >= account.y + account.height;
      expect({ entry: await entry.textContent(), apart }).toEqual({
        entry: await entry.textContent(),
        apart: true,
      });
    }
    const user = await t.app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: 'boite@example.com' } });
    expect(user.emailVerifiedAt).not.toBeNull();
  });

  it('shows a stopped central database as unreachable, keeps the last data greyed, then a stopped API', {
    timeout: 90_000,
  }, async () => {
    await page.goto(`${t.url}/clinics`);
    const row = page.locator('tr').filter({ hasText: 'Clinique Boîte' });
    await row.waitFor();
    expect(await page.getByTestId('total-all').textContent()).toBe('1');
    await page.getByRole('link', { name: 'Live feed' }).click();
    await expect.poll(() => page.getByTestId('live-indicator').getAttribute('data-state')).toBe('live');
    await page.getByRole('link', { name: 'Clinics', exact: true }).first().click();
    await row.waitFor();

    await central.stop();
    await page.getByRole('button', { name: 'Check all now' }).click();
    const banner = page.getByTestId('outage-banner');
    await banner.waitFor({ timeout: 15_000 });
    expect(await banner.textContent()).toContain('central database is unreachable');
    // The last data stays, greyed; no zeros, no "Unexpected error.".
    expect(await row.isVisible()).toBe(true);
    expect(await page.locator('[data-stale="true"]').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('total-all').textContent()).toBe('1');
    expect(await page.getByText('Unexpected error.').count()).toBe(0);
    expect(
      await page.getByRole('alert').filter({ hasText: 'database is unreachable' }).count(),
    ).toBeGreaterThan(0);
    await shotOf(page, 'outage');
    // The live indicator follows the real state: connected, but nothing can come.
    await page.getByRole('link', { name: 'Live feed' }).click();
    await expect.poll(() => page.getByTestId('live-indicator').getAttribute('data-state')).toBe('degraded');

    // Now the API itself goes away: the socket closes, the indicator says so.
    await t.app.stop();
    await expect
      .poll(() => page.getByTestId('live-indicator').getAttribute('data-state'), { timeout: 15_000 })
      .toBe('disconnected');
    await expect.poll(() => banner.textContent(), { timeout: 15_000 }).toContain('server cannot be reached');
  });
});

describe("the start banner's sign-in link", async () => {
  const server = await startServerProcess({
    ONRAMP_ENV: 'development',
    DATABASE_URL: await createTestDatabase('banner_e2e'),
    ONRAMP_CONSOLE_DIR: consoleDir,
  });

  it('signs the super-admin in from the link printed on standard output', { timeout: 60_000 }, async () => {
    const link = /(http:\/\/\S+\/sign-in#link=[A-Za-z0-9_-]{43})/.exec(server.stdout())?.[1] as string;
    expect(link.startsWith(`${server.url}/sign-in#link=`)).toBe(true);
    const page = await newPage();
    try {
      // Signed out, in development, the sign-in page says where the link is.
      await page.goto(server.url);
      await page.getByTestId('terminal-link-hint').waitFor();
      expect(await page.getByTestId('terminal-link-hint').textContent()).toContain('one-time sign-in link');
      await shotOf(page, 'sign-in');
      await page.goto(link);
      await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
      expect(await page.getByText('admin@onramp.localhost').isVisible()).toBe(true);
      expect(page.url()).toBe(`${server.url}/clinics`);
      // A reload keeps the session (refresh token), and the spent link works no more.
      await page.reload();
      await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
      const other = await newPage();
      try {
        await other.goto(link);
        await other.getByText('This sign-in link is invalid, used or expired').waitFor();
      } finally {
        await other.close();
      }
    } finally {
      await page.close();
    }
  });
});
