/**
 * `pnpm clinics:migrate [--canary N] [--concurrency N] [--failure-threshold N]`: a client of the
 * rollouts module (docs/decisions/047). Starts a rollout of every READY clinic behind the clinic
 * schema — or follows the one under way, e.g. the server's own at start —, drives it here unless
 * a running server already does, prints its progress and result. Exits 1 when a clinic failed or
 * the rollout paused (it stays paused: resume it in the console) or was aborted.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/env.js';
import { ValidationError } from '../src/errors.js';
import { createLogger } from '../src/logger.js';
import type { ProvisioningEvent } from '../src/modules/provisioning/index.js';
import { RolloutService, type RolloutView } from '../src/modules/rollouts/service.js';
import { createEventBus } from '../src/pubsub/index.js';
import { openProvisioning } from './operator.js';

const { values } = parseArgs({
  options: {
    canary: { type: 'string', default: '0' },
    concurrency: { type: 'string' },
    'failure-threshold': { type: 'string' },
  },
});
const config = loadConfig();
const logger = createLogger(config);
// The UPGRADE runs' events go through the central database's event bus (once it is open): the
// consoles of a running server watch them live.
const progress = { publish: (_event: ProvisioningEvent) => {} };
const { db, provisioning } = await openProvisioning(config, logger, progress);
const events = await createEventBus({ config, connectionString: db.centralUrl, logger });
progress.publish = (event) => events.pubsub.publish('provisioning', event);
const rollouts = new RolloutService({
  config,
  logger,
  db,
  provisioning,
  publishRollout: (rolloutId) => events.pubsub.publish('rollouts', { rolloutId }),
});
try {
  let rollout = await rollouts.active();
  if (rollout) {
    console.log(`a rollout is under way (${rollout.id}, ${rollout.status}): following it`);
    await rollouts.drive(rollout.id);
  } else {
    rollout = await rollouts.startRollout(
      {
        canary: Number(values.canary),
        concurrency: Number(values.concurrency ?? config.clinicHealthConcurrency),
        // By default every clinic is tried, whatever fails (as before rollouts).
        failureThreshold: Number(values['failure-threshold'] ?? 1_000_000),
        continueWhenHealthy: true,
      },
      { userId: null },
    );
    console.log(
      `rollout ${rollout.id}: ${rollout.counts.total} clinic databases to ${rollout.targetVersion}`,
    );
  }
  let last = '';
  const result: RolloutView = await rollouts.follow(rollout.id, (current) => {
    const line = `  ${current.status}: ${current.counts.done} upgraded, ${current.counts.failed} failed, ${current.counts.remaining} remaining`;
    if (line !== last) console.log(line);
    last = line;
  });
  console.log(
    `clinic databases: ${result.counts.total} in the rollout, ${result.counts.done} upgraded, ${result.counts.failed} failed, ${result.counts.remaining} remaining (${result.status})`,
  );
  for (const clinic of result.clinics.filter((entry) => entry.state === 'FAILED'))
    console.log(`  ${clinic.clinicId}: ${clinic.error}`);
  if (result.status === 'PAUSED') console.log(`paused: ${result.pauseReason}`);
  process.exitCode = result.status === 'COMPLETED' && result.counts.failed === 0 ? 0 : 1;
} catch (error) {
  if (error instanceof ValidationError)
    for (const field of error.fields) console.error(`--${field.path.at(-1)}: ${field.message}`);
  else console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
} finally {
  await rollouts.close();
  await provisioning.close();
  await events.close();
  await db.close();
}
