import type { Page } from 'playwright-core';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { mapLimit } from '../../server/src/concurrency.js';
import { startEmbeddedPostgres } from '../../server/src/db/embedded.js';
import { quoteIdent, withClient } from '../../server/src/db/sql.js';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import {
  afterFile,
  createTestDatabase,
  overTcp,
  startTestApp,
  tempDir,
  testLogger,
} from '../../server/test/harness.js';
import { createClinic } from '../../server/test/registration-flow.js';
import { impostorDir } from '../../server/test/swap.js';
import { HEALTH_PAGE_SIZE } from '../src/features/clinics/ClinicHealthTable';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole('onramp-console-health-build-');

const newBrowserPage = browserPages();

describe('the Clinics page with more clinics than a page', async () => {
  const t = await startTestApp(
    // The shallow sweep every second publishes the drop below.
    { CLINIC_HEALTH_INTERVAL_SECONDS: '1', CLINIC_POOL_SIZE: '0' },
    { consoleDir },
  );
  const { provisioning, db } = t.app.deps;
  const count = HEALTH_PAGE_SIZE + 2;
  await mapLimit(
    Array.from({ length: count }, (_, index) => `Paged ${String(index).padStart(2, '0')}`),
    4,
    (clinicName) => createClinic(t, { clinicName, country: 'FR' }),
  );
  // The order the table shows: oldest first.
  const clinics = await db.prisma.clinic.findMany({
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    select: { id: true, name: true, databaseName: true },
  });
  let page: Page;
  beforeAll(async () => {
    page = await newBrowserPage();
  });
  const shownIds = () =>
    page.locator('tbody tr').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-clinic-id')));

  it('shows one page at a time, counted and paged by the server', { timeout: 90_000 }, async () => {
    const { token } = await new SignInLinks({ config: t.config, prisma: db.prisma }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();

    await expect.poll(() => page.getByTestId('total-all').textContent()).toBe(String(count));
    await expect.poll(shownIds).toEqual(clinics.slice(0, HEALTH_PAGE_SIZE).map((clinic) => clinic.id));
    expect(await page.getByTestId('page-number').textContent()).toBe('Page 1');
    expect(await page.getByRole('button', { name: 'Previous' }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: 'Next' }).click();
    await expect.poll(shownIds).toEqual(clinics.slice(HEALTH_PAGE_SIZE).map((clinic) => clinic.id));
    expect(await page.getByTestId('page-number').textContent()).toBe('Page 2');
    expect(await page.getByRole('button', { name: 'Next' }).isDisabled()).toBe(true);
    await page.getByRole('button', { name: 'Previous' }).click();
    await expect.poll(() => page.getByTestId('page-number').textContent()).toBe('Page 1');
    await expect.poll(async () => (await shownIds()).length).toBe(HEALTH_PAGE_SIZE);

    // The search runs on the server, over every page.
    const last = clinics.at(-1) as (typeof clinics)[number];
    await page.getByLabel('Search').fill(last.name.toLowerCase());
    await expect.poll(shownIds).toEqual([last.id]);
    await page.getByLabel('Search').fill('');
    await expect.poll(async () => (await shownIds()).length).toBe(HEALTH_PAGE_SIZE);
  });

  it('counts a database dropped on a page not shown, and filters to it', { timeout: 60_000 }, async () => {
    const last = clinics.at(-1) as (typeof clinics)[number];
    expect(await page.getByTestId('total-missing').textContent()).toBe('0');
    await provisioning.clients.evict(last.id);
    await withClient(inject('pgAdminUrl'), (client) =>
      client.query(`DROP DATABASE ${quoteIdent(last.databaseName)} WITH (FORCE)`),
    );
    await expect.poll(() => page.getByTestId('total-missing').textContent(), { timeout: 15_000 }).toBe('1');
    expect(await shownIds()).not.toContain(last.id); // it is on page 2
    await page.getByLabel('Database health').selectOption('MISSING');
    await expect.poll(shownIds).toEqual([last.id]);
    expect(await page.locator(`tr[data-clinic-id="${last.id}"] .badge`).textContent()).toBe('MISSING');
    await provisioning.repairClinic(last.id);
  });
});

describe('the Clinics page with a held clinic database server (decision 090)', async () => {
  const logger = testLogger({ env: 'test', logLevel: 'error' });
  const dir = tempDir('onramp-held-e2e-a-');
  let recorded = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterFile(() => recorded.stop());
  const url = overTcp(recorded.url);
  const central = await createTestDatabase('held_e2e');
  const env = { DATABASE_URL: central, CLINIC_DATABASE_SERVERS: url, CLINIC_POOL_SIZE: '0' };
  // A clinic on the recorded server; then another cluster at its address when Onramp starts again.
  const first = await startTestApp({ ...env, CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  await createClinic(first, { clinicName: 'Kept Safe', country: 'FR' });
  await first.app.stop();
  await recorded.stop();
  recorded = await startEmbeddedPostgres({
    dir: impostorDir(dir, 'onramp-held-e2e-b-'),
    logger,
    ephemeral: true,
  });
  expect(overTcp(recorded.url)).toBe(url);
  const t = await startTestApp({ ...env, CLINIC_HEALTH_INTERVAL_SECONDS: '1' }, { consoleDir });
  let page: Page;
  beforeAll(async () => {
    page = await newBrowserPage();
  });

  it('names the held server and why, and drops the notice once an operator accepts it', {
    timeout: 60_000,
  }, async () => {
    const held = await t.app.deps.db.prisma.databaseServer.findFirstOrThrow({
      where: { heldReason: { not: null } },
    });
    const { token } = await new SignInLinks({
      config: t.config,
      prisma: t.app.deps.db.prisma,
    }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    const notice = page.getByTestId('held-servers');
    await notice.waitFor();
    expect(await notice.getAttribute('role')).toBe('alert');
    const text = (await notice.textContent()) ?? '';
    expect(text).toContain(`Clinic database server ${held.name} gets no clinic.`);
    expect(text).toContain('1 live clinic');
    expect(text).toContain(`pnpm clinics:servers accept ${held.name}`);

    const accepted = await t.gql(
      'mutation ($s: String!) { acceptDatabaseServer(server: $s) { __typename ... on DatabaseServer { held } } }',
      { s: held.name },
      await t.superAdmin(),
    );
    expect(accepted.body.data).toEqual({
      acceptDatabaseServer: { __typename: 'DatabaseServer', held: false },
    });
    await page.reload();
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    await page.getByTestId('total-all').waitFor();
    expect(await page.getByTestId('held-servers').count()).toBe(0);
  });
});
