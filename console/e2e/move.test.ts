/**
 * The clinic page's Move action in a real browser (Debian's chromium through playwright-core),
 * against a real app configured with two embedded PostgreSQL servers: choose the other server,
 * confirm, watch the MOVE run's steps appear, read the downtime.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { serverAddress } from '../../server/src/db/servers.js';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { startExtraPostgres, startTestApp, tempDir } from '../../server/test/harness.js';
import { registerClinic } from '../../server/test/registration-flow.js';
import { buildConsole } from './build.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  throw new Error(`${CHROMIUM} is missing: pnpm test installs it (Debian: apt-get install -y chromium)`);
}
const consoleDir = tempDir('onramp-console-build-');
buildConsole(consoleDir);
const other = await startExtraPostgres();

describe('moving a clinic from its page', async () => {
  const t = await startTestApp(
    {
      CLINIC_DATABASE_SERVERS: `${inject('pgAdminUrl')},${other.url}`,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    },
    { consoleDir },
  );
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  afterAll(() => browser.close());

  it('moves the clinic to the chosen server and shows the run and its downtime', {
    timeout: 90_000,
  }, async () => {
    const answer = await registerClinic(t);
    const clinic = answer.result?.clinic;
    if (!clinic) throw new Error(`registration failed: ${JSON.stringify(answer)}`);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const { token } = await new SignInLinks({
      config: t.config,
      prisma: t.app.deps.db.prisma,
    }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();

    await page.goto(`${t.url}/clinics/${clinic.id}`);
    const target = serverAddress(other.url);
    await page.getByRole('button', { name: 'Move', exact: true }).click();
    const select = page.getByTestId('move-target');
    await page
      .locator(`[data-testid="move-target"] option[value="${target}"]`)
      .waitFor({ state: 'attached' });
    // The server it is on now is not offered.
    expect(await page.locator('[data-testid="move-target"] option').allTextContents()).toHaveLength(2);
    await select.selectOption(target);
    await page.getByRole('button', { name: 'Move now' }).click();

    const result = page.getByTestId('move-result');
    await result.waitFor();
    expect(await result.textContent()).toMatch(
      new RegExp(`Moved to ${target.replace('.', '\\.')}: \\d+ rows verified, writes frozen for \\d+ ms`),
    );
    // The run's steps are on the page (the timeline follows provisioningProgress), and so is the new server.
    await page.getByText('move_switch').first().waitFor();
    await page.locator('dd', { hasText: target }).first().waitFor();
    await page.close();
  });
});
