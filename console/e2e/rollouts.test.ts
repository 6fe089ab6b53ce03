import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clinicMigrationsWith } from '../../server/test/clinic-migrations.js';
import { startTestApp } from '../../server/test/harness.js';
import { registerClinic } from '../../server/test/registration-flow.js';
import { startSmtpSink } from '../../server/test/smtp-sink.js';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole();

const newBrowserPage = browserPages();

describe('the Rollouts page', async () => {
  const quiet = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };
  // Clinics registered at the repository's clinic schema...
  const before = await startTestApp(quiet);
  for (let i = 0; i < 3; i++) {
    const answer = await registerClinic(before);
    if (answer.result?.status !== 'READY') throw new Error(JSON.stringify(answer));
  }
  // ...and the console of a deployment with one clinic migration more.
  const sink = await startSmtpSink();
  afterAll(() => sink.stop());
  const t = await startTestApp(
    {
      ...quiet,
      SMTP_URL: sink.url,
      DATABASE_URL: before.config.databaseUrl,
      CLINIC_ROLLOUT_AT_START: 'off',
      CLINIC_MIGRATIONS_DIR: clinicMigrationsWith({
        '20991201000000_invoices': 'CREATE TABLE "invoices" ("id" UUID PRIMARY KEY);',
      }),
    },
    { consoleDir },
  );
  let page: Page;
  beforeAll(async () => {
    page = await newBrowserPage();
  });

  it('starts a rollout, pauses after the canary, resumes and shows it finish, live', {
    timeout: 90_000,
  }, async () => {
    // Signed in as the super-admin with the code e-mailed to them.
    await page.goto(t.url);
    await page.getByLabel('E-mail').fill(t.config.adminEmail);
    await page.getByRole('button', { name: 'Send me a code' }).click();
    const mail = await sink.waitFor((message) => message.subject === 'Your Onramp sign-in code');
    await page.getByLabel('Code from the e-mail').fill(/\b(\d{6})\b/.exec(mail.text ?? '')?.[1] as string);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();

    await page.getByRole('link', { name: 'Rollouts' }).click();
    await page.getByRole('heading', { name: 'Rollouts', level: 1 }).waitFor();
    await page.getByText('No rollout yet.').waitFor();

    // Out of range: the page says which option and why; nothing starts.
    await page.getByLabel('Canary clinics').fill('-1');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await expect
      .poll(() => page.getByRole('alert').textContent())
      .toBe('canary: must be a whole number from 0 to 1000');

    await page.getByLabel('Canary clinics').fill('1');
    await page.getByLabel('Concurrency').fill('2');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    const card = page.getByTestId('rollout').first();
    await expect
      .poll(() => card.getByTestId('rollout-status').textContent(), { timeout: 30_000 })
      .toBe('PAUSED');
    expect(await card.getByTestId('rollout-counts').textContent()).toBe('1 done, 0 failed, 2 remaining of 3');
    expect(await card.getByTestId('pause-reason').textContent()).toMatch(/canaries are upgraded and HEALTHY/);
    expect(await card.locator('[data-testid="rollout-clinic"][data-state="UPGRADED"]').count()).toBe(1);

    await card.getByRole('button', { name: 'Resume' }).click();
    // Nothing reloads: the subscription brings each clinic's upgrade, then the end.
    await expect
      .poll(() => card.getByTestId('rollout-status').textContent(), { timeout: 30_000 })
      .toBe('COMPLETED');
    expect(await card.getByTestId('rollout-counts').textContent()).toBe('3 done, 0 failed, 0 remaining of 3');
    expect(await card.locator('[data-testid="rollout-clinic"][data-state="UPGRADED"]').count()).toBe(3);
    expect(await card.getByRole('button', { name: 'Resume' }).count()).toBe(0);
  });
});
