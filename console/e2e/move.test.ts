import { describe, expect, inject, it } from 'vitest';
import { serverAddress } from '../../server/src/db/servers.js';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { startExtraPostgres, startTestApp } from '../../server/test/harness.js';
import { registerClinic } from '../../server/test/registration-flow.js';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole();
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
  const newBrowserPage = browserPages();

  it('moves the clinic to the chosen server and shows the run and its downtime', {
    timeout: 90_000,
  }, async () => {
    const answer = await registerClinic(t);
    const clinic = answer.result?.clinic;
    if (!clinic) throw new Error(`registration failed: ${JSON.stringify(answer)}`);
    const page = await newBrowserPage();
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
