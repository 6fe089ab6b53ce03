/**
 * `pnpm cluster`: three instances behind HAProxy with Redis, a central PostgreSQL and two clinic
 * servers, all throw-away (README, "Running several instances"). Ctrl-C stops everything.
 * CLUSTER_PORT picks the load balancer's port (default 4000); CLUSTER_INSTANCES their number.
 */
import { startCluster } from '../test/cluster.js';
import { describeMessage } from '../test/smtp-sink.js';

const cluster = await startCluster({
  port: Number(process.env.CLUSTER_PORT ?? 4000),
  instances: Number(process.env.CLUSTER_INSTANCES ?? 3),
  env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
  onOutput: (instance, line) => process.stdout.write(`[${instance}] ${line}\n`),
});
const lines = [
  `Onramp cluster at ${cluster.url} (HAProxy, round robin, health checks on /readyz)`,
  ...cluster.instances.map((instance) => `  instance ${instance.name}  ${instance.url}`),
  `  central    ${cluster.centralUrl}`,
  ...cluster.clinicServerUrls.map((url, i) => `  clinic ${i + 1}   ${url}`),
  `  redis      ${cluster.redisUrl}`,
  `  mail       ${cluster.smtp.url} (sign-in codes of admin@onramp.localhost are printed below)`,
  'Ctrl-C stops everything and removes its files.',
];
process.stdout.write(`${lines.join('\n')}\n`);
cluster.smtp
  .waitFor(
    (message) => {
      process.stdout.write(describeMessage(message));
      return false;
    },
    2 ** 31 - 1,
  )
  .catch(() => {});

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('stopping the cluster…\n');
    cluster.stop().then(() => process.exit(0));
  });
}
