/**
 * `pnpm clinics:migrate`: applies pending clinic migrations to every READY clinic database,
 * a few at a time, and prints a report. Exits 1 when any clinic failed (the others still ran).
 */
import { openDatabases } from '../src/db/database.js';
import { loadConfig } from '../src/env.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { ProvisioningService } from '../src/modules/provisioning/service.js';

const config = loadConfig();
const logger = createLogger(config);
const db = await openDatabases(config, logger);
const provisioning = new ProvisioningService({
  config,
  logger,
  db,
  metrics: createMetrics(),
  publishProgress: () => {},
  publishHealth: () => {},
});
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
