/** Boot: environment → databases → app.start(); SIGINT/SIGTERM stop gracefully. */

import { buildApp } from './app.js';
import { openDatabases } from './db/database.js';
import { ConfigError, loadConfig } from './env.js';
import { createLogger } from './logger.js';

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
  const db = await openDatabases(config, logger);
  const app = await buildApp({ config, logger, db, startedAt: new Date() });

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

  try {
    await app.start();
  } catch (error) {
    logger.fatal({ err: error }, 'could not listen');
    await app.stop();
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `Onramp failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
