/**
 * `pnpm clinics:migrate` as an operator runs it, from the repository root: a client of the
 * rollouts module that starts a rollout, follows it and prints the result.
 */
import { describe, expect, inject, it } from 'vitest';
import { clinicMigrationsWith } from '../../../test/clinic-migrations.js';
import { runPnpm, startTestApp, TEST_SECRETS, tempDir } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { databaseUrl, withClient } from '../../db/sql.js';

describe('pnpm clinics:migrate', async () => {
  const before = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma, clinicServers } = before.app.deps.db;
  const clinics: string[] = [];
  for (let i = 0; i < 3; i++) clinics.push((await registerClinic(before)).result?.clinic?.id as string);
  const env = {
    ...TEST_SECRETS,
    ONRAMP_ENV: 'test',
    LOG_LEVEL: 'error',
    ONRAMP_DATA_DIR: tempDir('onramp-cli-'),
    DATABASE_URL: before.config.databaseUrl as string,
    CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
    CLINIC_MIGRATIONS_DIR: clinicMigrationsWith({
      '20991201000000_invoices': 'CREATE TABLE "invoices" ("id" UUID PRIMARY KEY);',
    }),
  };

  it('refuses a bad option, then rolls the new clinic schema out and reports the clinic that failed', async () => {
    const bad = await runPnpm(['-s', 'clinics:migrate', '--concurrency', '0'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--concurrency: must be a whole number from 1 to 32');
    expect(await prisma.rollout.count()).toBe(0);

    const broken = await prisma.clinic.findUniqueOrThrow({ where: { id: clinics[1] as string } });
    await withClient(databaseUrl(clinicServers[0]?.url as string, broken.databaseName), (client) =>
      client.query('CREATE TABLE "invoices" (x INT)'),
    );
    const { code, stdout } = await runPnpm(['-s', 'clinics:migrate'], env);
    expect(stdout).toContain(
      'clinic databases: 3 in the rollout, 2 upgraded, 1 failed, 0 remaining (COMPLETED)',
    );
    expect(stdout).toMatch(new RegExp(`${broken.id}: relation "invoices" already exists`));
    expect(code).toBe(1);
    const rollout = await prisma.rollout.findFirstOrThrow({ include: { clinics: true } });
    expect(rollout.status).toBe('COMPLETED');
    expect(rollout.clinics.filter((clinic) => clinic.state === 'UPGRADED')).toHaveLength(2);
  }, 120_000);
});
