/** Boot: environment → databases → app.start(); SIGINT/SIGTERM stop gracefully. */

import { buildApp, CONSOLE_DIST } from './app.js';
import { printDevelopmentBanner } from './banner.js';
import { openDatabases } from './db/database.js';
import { EmbeddedPostgresInUse } from './db/embedded.js';
import { ConfigError, loadConfig } from './env.js';
import { createLogger } from './logger.js';
import { announceListening } from './process-channel.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }
  const logger = createLogger(config);
  // A second server on the same data dir would pull the first one's database from under it.
  const db = await openDatabases(config, logger, { whenEmbeddedOwned: 'refuse' });
  const consoleDir = config.consoleDir ?? CONSOLE_DIST;
  const app = await buildApp({ config, logger, db, startedAt: new Date() }, { consoleDir });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));

  let url: string;
  try {
    url = await app.start();
  } catch (error) {
    logger.fatal({ err: error }, 'could not start');
    await app.stop();
    process.exit(1);
  }
  // Here, not in app.ts: a test app in a vitest worker (a forked process) must not tell vitest.
  announceListening(url);
  // Development only: console, GraphiQL and a one-time sign-in link, on stdout (decision 020).
  await printDevelopmentBanner({ config, prisma: db.prisma, consoleDir }, url);
}

main().catch((error: unknown) => {
  if (error instanceof EmbeddedPostgresInUse) {
    process.stderr.write(`Onramp failed to start: ${error.message}\n`);
    process.exit(1);
  }
  process.stderr.write(
    `Onramp failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
