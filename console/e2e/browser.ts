/**
 * What every browser test file shares: Debian's chromium (or CHROMIUM_PATH), the console built for
 * the file's server, and one headless browser for its tests.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { tempDir } from '../../server/test/harness.js';
import { buildConsole } from './build.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/**
 * The console built into a fresh folder (startTestApp's `consoleDir`).
 * @throws when chromium is missing: the browser tests cannot run without it
 */
export function builtConsole(prefix = 'onramp-console-build-'): string {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: pnpm test installs it (Debian: apt-get install -y chromium)`);
  }
  const dir = tempDir(prefix);
  buildConsole(dir);
  return dir;
}

/**
 * One headless chromium for the tests of the file (or describe block) that calls this: launched
 * before them, closed after. @returns a function opening a new 1280×800 page
 */
export function browserPages(): () => Promise<Page> {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });
  return () => {
    if (!browser) throw new Error('the browser is launched before the tests');
    return browser.newPage({ viewport: { width: 1280, height: 800 } });
  };
}
