/**
 * The onboarding API's reference (`/api/v1/docs`, Redoc from this server, decision 046) in a
 * browser: it renders the OpenAPI document, and nothing on the page breaks its Content Security
 * Policy or fails (a CSP violation is a console error in Chromium).
 */
import type { ConsoleMessage, Page } from 'playwright-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../../server/test/harness.js';
import { browserPages } from './browser.js';

const newBrowserPage = browserPages();

describe('the onboarding API reference in a browser', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  let page: Page;
  const problems: string[] = [];
  beforeAll(async () => {
    page = await newBrowserPage();
    page.on('console', (message: ConsoleMessage) => {
      if (message.type() === 'error' || message.type() === 'warning')
        problems.push(`${message.text()} (${message.location().url})`);
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('requestfailed', (request) => problems.push(`${request.url()}: ${request.failure()?.errorText}`));
  });

  it('renders the document with every part from this server, no CSP violation, no error', {
    timeout: 60_000,
  }, async () => {
    await page.goto(`${t.url}/api/v1/docs`);
    await page.getByRole('heading', { name: /Onramp onboarding service/i }).waitFor();
    await page.getByText('/api/v1/onboarding/start').first().waitFor();
    // Redoc's sidebar footer (its attribution, with a logo) is drawn after the first render.
    await page.getByRole('link', { name: /redocly/i }).waitFor();
    await page.waitForLoadState('networkidle');
    expect(problems).toEqual([]);
  });
});
