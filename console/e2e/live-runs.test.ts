/**
 * The live feed follows every kind of run to its end, not only registrations: an upgrade, a
 * repair, a move, a delete and a restore each show their steps live, then end as succeeded
 * (their plans end with other steps than `commit`, and once stayed "Running").
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { serverAddress } from '../../server/src/db/servers.js';
import { databaseUrl, withClient } from '../../server/src/db/sql.js';
import { SignInLinks } from '../../server/src/modules/auth/sign-in-links.js';
import { clinicMigrationsWith } from '../../server/test/clinic-migrations.js';
import { startExtraPostgres, startTestApp } from '../../server/test/harness.js';
import { registerClinic } from '../../server/test/registration-flow.js';
import { browserPages, builtConsole } from './browser.js';

const consoleDir = builtConsole();
const other = await startExtraPostgres();
const newBrowserPage = browserPages();

describe('the live feed', async () => {
  const quiet = { CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' };
  // A clinic registered at the repository's clinic schema...
  const before = await startTestApp(quiet);
  const answer = await registerClinic(before);
  const clinic = answer.result?.clinic;
  if (answer.result?.status !== 'READY' || !clinic) throw new Error(JSON.stringify(answer));
  // ...then a deployment with one clinic migration more (an upgrade to run) and a second server.
  const t = await startTestApp(
    {
      ...quiet,
      DATABASE_URL: before.config.databaseUrl,
      CLINIC_DATABASE_SERVERS: `${inject('pgAdminUrl')},${other.url}`,
      CLINIC_ROLLOUT_AT_START: 'off',
      CLINIC_MIGRATIONS_DIR: clinicMigrationsWith({
        '20991201000000_invoices': 'CREATE TABLE "invoices" ("id" UUID PRIMARY KEY);',
      }),
    },
    { consoleDir },
  );
  const { provisioning, rollouts, moves } = t.app.deps;
  const operator = { userId: null };
  let page: Page;
  beforeAll(async () => {
    page = await newBrowserPage();
    const { token } = await new SignInLinks({
      config: t.config,
      prisma: t.app.deps.db.prisma,
    }).issueForAdmin();
    await page.goto(`${t.url}/sign-in#link=${token}`);
    await page.getByRole('heading', { name: 'Clinics', level: 1 }).waitFor();
    await page.goto(`${t.url}/live`);
    await page.locator('[data-testid="live-indicator"][data-state="live"]').waitFor();
  });
  afterAll(async () => {
    await page?.close();
  });

  /** The feed's card of the newest run of `kind`, once it ended: its status and its steps. */
  async function endedRun(kind: string, lastStep: string) {
    const run = await t.app.deps.db.prisma.provisioningRun.findFirstOrThrow({
      where: { clinicId: clinic?.id, kind: kind as 'REPAIR' },
      orderBy: { startedAt: 'desc' },
    });
    expect(run.status).toBe('SUCCEEDED');
    const card = page.locator(`article[data-run-id="${run.id}"]`);
    // Nothing reloads: the subscription brought the run and its end.
    await expect
      .poll(() => card.getByTestId('run-status').textContent(), { timeout: 10_000 })
      .toBe('Succeeded');
    await card.getByText(lastStep, { exact: true }).first().waitFor();
    return card;
  }

  it('shows an UPGRADE run end', { timeout: 60_000 }, async () => {
    const started = await rollouts.startRollout({ canary: 0, concurrency: 1 }, operator);
    await expect
      .poll(async () => (await rollouts.get(started.id)).status, { timeout: 30_000 })
      .toBe('COMPLETED');
    await endedRun('UPGRADE', 'verify_database');
  });

  it('shows a REPAIR run end', { timeout: 60_000 }, async () => {
    // Damaged from outside: a table of its schema is gone.
    const { databaseName } = await t.app.deps.db.prisma.clinic.findUniqueOrThrow({
      where: { id: clinic.id },
    });
    await withClient(databaseUrl(inject('pgAdminUrl'), databaseName), (c) => c.query('DROP TABLE settings'));
    const repaired = await provisioning.repairClinic(clinic.id);
    expect(repaired.alreadyHealthy).toBe(false);
    await endedRun('REPAIR', 'verify_database');
  });

  it('shows a MOVE run end', { timeout: 60_000 }, async () => {
    await moves.moveClinic(clinic.id, serverAddress(other.url));
    await endedRun('MOVE', 'move_quarantine_source');
  });

  it('shows a DELETE run, then a RESTORE run, end', { timeout: 60_000 }, async () => {
    await provisioning.deleteClinic(clinic.id);
    await endedRun('DELETE', 'commit');
    await provisioning.restoreClinic(clinic.id);
    const card = await endedRun('RESTORE', 'commit');
    expect(await card.getByTestId('run-status').textContent()).toBe('Succeeded');
  });
});
