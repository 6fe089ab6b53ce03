/**
 * What the operator scripts share: the central and clinic databases of this data dir (joining a
 * running embedded PostgreSQL) and a provisioning service that publishes its runs' events to
 * `progress` (nowhere, unless the script has an event bus).
 */
import { openDatabases } from '../src/db/database.js';
import { type Config, loadConfig } from '../src/env.js';
import { OnrampError } from '../src/errors.js';
import { createLogger, type Logger } from '../src/logger.js';
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

/**
 * Runs an operator command on this data dir's databases, closed afterwards. An `OnrampError` (a
 * target that does not exist, a state that forbids the command) is printed and exits 1.
 */
export async function runOperatorCommand(
  work: (opened: Awaited<ReturnType<typeof openProvisioning>>) => Promise<void>,
): Promise<void> {
  const config = loadConfig();
  const opened = await openProvisioning(config, createLogger(config));
  try {
    await work(opened);
  } catch (error) {
    if (!(error instanceof OnrampError)) throw error;
    console.error(error.message);
    process.exitCode = 1;
  } finally {
    await opened.provisioning.close();
    await opened.db.close();
  }
}
