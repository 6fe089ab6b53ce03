/**
 * What the operator scripts share: the central and clinic databases of this data dir (joining a
 * running embedded PostgreSQL) and a provisioning service that publishes its runs' events to
 * `progress` (nowhere, unless the script has an event bus).
 */
import { openDatabases } from '../src/db/database.js';
import type { Config } from '../src/env.js';
import type { Logger } from '../src/logger.js';
import { createMetrics } from '../src/metrics.js';
import type { ProvisioningEvent } from '../src/modules/provisioning/index.js';
import { ProvisioningService } from '../src/modules/provisioning/service.js';

export async function openProvisioning(
  config: Config,
  logger: Logger,
  progress: { publish(event: ProvisioningEvent): void } = { publish: () => {} },
) {
  const db = await openDatabases(config, logger);
  const provisioning = new ProvisioningService({
    config,
    logger,
    db,
    metrics: createMetrics(),
    publishProgress: (event) => progress.publish(event),
    publishHealth: () => {},
  });
  return { db, provisioning };
}
