/**
 * What the operator scripts share: the central and clinic databases of this data dir (joining a
 * running embedded PostgreSQL) and a provisioning service that publishes nowhere.
 */
import { openDatabases } from '../src/db/database.js';
import type { Config } from '../src/env.js';
import type { Logger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import { ProvisioningService } from '../src/modules/provisioning/service.js';

export async function openProvisioning(config: Config, logger: Logger) {
  const db = await openDatabases(config, logger);
  const provisioning = new ProvisioningService({
    config,
    logger,
    db,
    metrics: createMetrics(),
    publishProgress: () => {},
    publishHealth: () => {},
  });
  return { db, provisioning };
}
