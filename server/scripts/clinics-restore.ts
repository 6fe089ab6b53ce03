/**
 * `pnpm clinics:restore <trashName|clinicId>`: restores a quarantined clinic database (decision
 * 040) — a DELETED clinic's (READY again, as restoreClinic does, without republishing its DNS:
 * use the mutation for that) or one a run that never committed left (back under its own name,
 * kept). Exits 1 when there is nothing to restore.
 */
import { loadConfig } from '../src/env.js';
import { OnrampError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import { openProvisioning } from './operator.js';

const target = process.argv[2];
if (!target) {
  console.error('usage: pnpm clinics:restore <trashName|clinicId>  (see zombieReport { quarantined })');
  process.exit(2);
}
const config = loadConfig();
const logger = createLogger(config);
const { db, provisioning } = await openProvisioning(config, logger);
try {
  console.log(await provisioning.restoreQuarantined(target));
} catch (error) {
  if (!(error instanceof OnrampError)) throw error;
  console.error(error.message);
  process.exitCode = 1;
} finally {
  await provisioning.close();
  await db.close();
}
