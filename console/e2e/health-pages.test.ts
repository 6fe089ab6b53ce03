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

describe('the Clinics page with a held clinic database server (decisions 090, 094)', async () => {
  const logger = testLogger({ env: 'test', logLevel: 'error' });
  const dir = tempDir('onramp-held-e2e-a-');
  let cluster = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterFile(() => cluster.stop());
  const url = overTcp(cluster.url);
  const central = await createTestDatabase('held_e2e');
  const env = { DATABASE_URL: central, CLINIC_DATABASE_SERVERS: url, CLINIC_POOL_SIZE: '0' };
  // A clinic on the recorded server; then another cluster at its address when Onramp starts again.
  const first = await startTestApp({ ...env, CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  await createClinic(first, { clinicName: 'Kept Safe', country: 'FR' });
  await first.app.stop();
  await cluster.stop();
  cluster = await startEmbeddedPostgres({
    dir: impostorDir(dir, 'onramp-held-e2e-b-'),
    logger,
    ephemeral: true,
  });
  expect(overTcp(cluster.url)).toBe(url);
  const t = await startTestApp({ ...env, CLINIC_HEALTH_INTERVAL_SECONDS: '1' }, { consoleDir });
  const { prisma } = t.app.deps.db;
  const recorded = await prisma.databaseServer.findFirstOrThrow({ where: { heldReason: null } });
  let page: Page;
  beforeAll(async () => {
    page = await newBrowserPage();
  });
  const notice = () => page.getByTestId('held-servers');
  const noticeText = async () =>
    (await notice().count()) === 0 ? '' : ((await notice().textContent()) ?? '');
  /** The dialog's text once it names both servers and what accepting means. */
  async function openAccept(name: string) {
    await notice()
      .getByRole('button', { name: `Accept ${name}` })
      .click();
    const dialog = page.getByRole('dialog', { name: `Accept ${name}?` });
    await dialog.waitFor();
    return dialog;
  }

  it('names the held server; a super-admin accepts it after a confirmation naming both servers', {
    timeout: 60_000,
  }, async () => {
    const held = await prisma.databaseServer.findFirstOrThrow({ where: { heldReason: { not: null } } });
    const { token } = await new SignInLinks({ config: t.config, prisma }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    await notice().waitFor();
    expect(await notice().getAttribute('role')).toBe('alert');
    const text = await noticeText();
    expect(text).toContain(`Clinic database server ${held.name} gets no clinic.`);
    expect(text).toContain('1 live clinic');
    expect(text).toContain(`pnpm clinics:servers accept ${held.name}`);

    const dialog = await openAccept(held.name);
    const said = (await dialog.textContent()) ?? '';
    expect(said).toContain(`${held.name} gets new clinics from now on`);
    expect(said).toContain(`${recorded.name} is not coming back at ${held.address}`);
    expect(said).toContain('1 live clinic');
    await dialog.getByRole('button', { name: 'Accept server' }).click();

    await expect.poll(() => page.getByTestId('held-accepted').textContent()).toContain(held.name);
    await expect.poll(() => notice().count()).toBe(0);
    const entry = await prisma.auditLog.findFirstOrThrow({
      where: { action: 'database_server.accepted', targetId: held.id },
    });
    const actor = await prisma.user.findUniqueOrThrow({ where: { id: entry.actorId as string } });
    expect({ role: actor.role, email: actor.email }).toEqual({
      role: 'SUPER_ADMIN',
      email: t.config.adminEmail,
    });
    expect(await prisma.databaseServer.findUniqueOrThrow({ where: { id: held.id } })).toMatchObject({
      heldReason: null,
    });
  });

  // Another instance started next to yet another cluster at the address: it records that one held.
  let second: Awaited<ReturnType<typeof startTestApp>> | undefined;
  afterFile(() => second?.app.stop());

  it('shows a server held by another instance at once, without a reload', { timeout: 60_000 }, async () => {
    await page.evaluate(() => {
      (window as unknown as { notReloaded: boolean }).notReloaded = true;
    });
    await cluster.stop();
    cluster = await startEmbeddedPostgres({
      dir: impostorDir(dir, 'onramp-held-e2e-c-'),
      logger,
      ephemeral: true,
    });
    second = await startTestApp({ ...env, CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
    const held = await prisma.databaseServer.findFirstOrThrow({
      where: { heldReason: { not: null } },
      orderBy: { createdAt: 'desc' },
    });
    expect(held.heldForId).toBe(recorded.id);
    await expect
      .poll(noticeText, { timeout: 5_000 })
      .toContain(`Clinic database server ${held.name} gets no clinic.`);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(
      true,
    );
  });

  it('says why an accept failed (another operator was first) and drops the notice live', {
    timeout: 60_000,
  }, async () => {
    const other = second as NonNullable<typeof second>;
    const held = await prisma.databaseServer.findFirstOrThrow({
      where: { heldReason: { not: null } },
      orderBy: { createdAt: 'desc' },
    });
    const dialog = await openAccept(held.name);
    // Another operator, on the other instance, accepts it while this one reads the confirmation.
    const accepted = await other.gql(
      'mutation ($s: String!) { acceptDatabaseServer(server: $s) { __typename ... on DatabaseServer { held } } }',
      { s: held.name },
      await other.superAdmin(),
    );
    expect(accepted.body.data).toEqual({
      acceptDatabaseServer: { __typename: 'DatabaseServer', held: false },
    });
    await expect.poll(() => notice().count(), { timeout: 5_000 }).toBe(0);

    await dialog.getByRole('button', { name: 'Accept server' }).click();
    const failed = page.getByTestId('held-accept-failed');
    await failed.waitFor();
    expect(await failed.getAttribute('role')).toBe('alert');
    expect(await failed.textContent()).toContain(`Clinic database server ${held.name} is not held`);
    expect(await page.getByRole('heading', { name: 'Clinics', level: 1 }).isVisible()).toBe(true);
    expect(await notice().count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded)).toBe(
      true,
    );
  });
});
