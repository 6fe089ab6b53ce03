import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { startExtraPostgres, startTestApp, type TestApp } from '../../server/test/harness.js';
import { createClinic } from '../../server/test/registration-flow.js';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole();

const newBrowserPage = browserPages();

const env = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };

/** A page signed in as the super-admin with a one-time link. */
async function signedIn(t: TestApp): Promise<Page> {
  const page = await newBrowserPage();
  const { token } = await new SignInLinks({ config: t.config, prisma: t.app.deps.db.prisma }).issueForAdmin();
  await page.goto(`${t.url}/sign-in#link=${token}`);
  await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
  return page;
}

describe('a deleted clinic in the console', async () => {
  const t = await startTestApp(env, { consoleDir });

  it('shows until when it can be restored, and Restore brings it back with its data', {
    timeout: 90_000,
  }, async () => {
    const { provisioning } = t.app.deps;
    const { clinicId } = await createClinic(t, { clinicName: 'Clinique Rendue', country: 'FR' });
    const data = await provisioning.clients.get(clinicId);
    await data.healthcareProvider.create({
      data: { firstName: 'Kept', lastName: 'Row', email: 'kept@example.com' },
    });
    const page = await signedIn(t);
    await page.goto(`${t.url}/clinics/${clinicId}`);
    await page.getByRole('heading', { name: 'Clinique Rendue', level: 1 }).waitFor();

    await page.getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Delete clinic' }).click();
    const until = page.getByTestId('restorable-until');
    await until.waitFor();
    const { purgeAfter } = await t.app.deps.db.prisma.clinicObject.findFirstOrThrow({
      where: { clinicId, kind: 'DATABASE', state: 'QUARANTINED' },
    });
    expect(await until.textContent()).toContain(String((purgeAfter as Date).getFullYear()));
    expect(await until.textContent()).toMatch(/quarantine until/);

    await page.getByRole('button', { name: 'Restore' }).click();
    await page.getByRole('button', { name: 'Restore now' }).click();
    await page.getByTestId('restore-result').waitFor();
    expect(await page.getByTestId('restore-result').textContent()).toContain('HEALTHY');
    await expect.poll(() => page.getByTestId('clinic-db-status').first().textContent()).toMatch(/HEALTHY/i);
    const restored = await provisioning.clients.get(clinicId);
    expect(await restored.healthcareProvider.count({ where: { lastName: 'Row' } })).toBe(1);
    await page.close();
  });
});

describe('a clinic whose database server is unreachable in the console', async () => {
  const other = await startExtraPostgres();
  const first = await startTestApp({ ...env, CLINIC_DATABASE_SERVERS: other.url }, { consoleDir });
  const { clinicId } = await createClinic(first, {
    clinicName: 'Clinique Lointaine',
    country: 'FR',
  });
  await first.app.stop();
  await other.stop();
  // The same central database, its clinic server down at start.
  const t = await startTestApp(
    { ...env, DATABASE_URL: first.config.databaseUrl, CLINIC_DATABASE_SERVERS: other.url },
    { consoleDir },
  );

  it('is shown as unreachable on the clinics page and on its own page', { timeout: 90_000 }, async () => {
    const page = await signedIn(t);
    const row = page.getByRole('row', { name: /Clinique Lointaine/ });
    await row.getByTestId('server-unreachable').waitFor();
    await page.goto(`${t.url}/clinics/${clinicId}`);
    const notice = page.getByTestId('server-unreachable');
    await notice.waitFor();
    expect(await notice.textContent()).toMatch(/is unreachable/);
    await page.close();
  });
});
