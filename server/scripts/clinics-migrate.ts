/**
 * `pnpm clinics:migrate`: applies pending clinic migrations to every READY clinic database,
 * a few at a time, and prints a report. Exits 1 when any clinic failed (the others still ran).
 */
import { loadConfig } from '../src/env.js';
import { createLogger } from '../src/logger.js';
import { openProvisioning } from './operator.js';

const config = loadConfig();
const logger = createLogger(config);
const { db, provisioning } = await openProvisioning(config, logger);
try {
  const report = await provisioning.migrateClinics({ concurrency: config.clinicHealthConcurrency });
  console.log(
    `clinic databases: ${report.total} checked, ${report.migrated} migrated, ${report.upToDate} up to date, ${report.failed.length} failed`,
  );
  for (const failure of report.failed) console.log(`  ${failure.clinicId}: ${failure.error}`);
  process.exitCode = report.failed.length > 0 ? 1 : 0;
} finally {
  await provisioning.close();
  await db.close();
}
