/**
 * Starts ONE throw-away embedded PostgreSQL for the whole test run (fsync off), migrates a
 * central template database and builds the clinic template. Test files clone the central
 * template (see harness.ts), which takes milliseconds instead of re-running migrations.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureClinicTemplate } from '../src/db/clinic-template.js';
import { ensureDatabase } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { migrate, readMigrations } from '../src/db/migrator.js';
import { CENTRAL_MIGRATIONS_DIR, CLINIC_MIGRATIONS_DIR } from '../src/db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../src/db/sql.js';
import { installJobSchema } from '../src/jobs/index.js';
import { createLogger } from '../src/logger.js';
import { orphanedServers } from './leaked-servers.js';

export const CENTRAL_TEMPLATE = 'onramp_test_central_template';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the shared test server's `postgres` database. */
    pgAdminUrl: string;
    centralTemplate: string;
  }
}

export default async function setup(project: TestProject) {
  // Left by an earlier run (or a run beside this one): not this run's to report.
  const before = new Set(orphanedServers().map((server) => server.pid));
  const dir = mkdtempSync(join(tmpdir(), 'onramp-test-pg-'));
  const logger = createLogger({ env: 'test', logLevel: 'warn' });
  const pg = await startEmbeddedPostgres({ dir, logger, ephemeral: true, maxConnections: 300 });
  try {
    await ensureDatabase(pg.url, CENTRAL_TEMPLATE);
    await withClient(databaseUrl(pg.url, CENTRAL_TEMPLATE), (client) =>
      migrate(client, readMigrations(CENTRAL_MIGRATIONS_DIR)),
    );
    await installJobSchema(databaseUrl(pg.url, CENTRAL_TEMPLATE), logger);
    await withClient(pg.url, (client) =>
      client.query(
        `ALTER DATABASE ${quoteIdent(CENTRAL_TEMPLATE)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`,
      ),
    );
    await ensureClinicTemplate(pg.url, readMigrations(CLINIC_MIGRATIONS_DIR), logger);
  } catch (error) {
    await pg.stop();
    throw error;
  }
  project.provide('pgAdminUrl', pg.url);
  project.provide('centralTemplate', CENTRAL_TEMPLATE);

  return async () => {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
    // A server a file never stopped fails the run, named, after being stopped (fast shutdown).
    const leaked = orphanedServers().filter((server) => !before.has(server.pid));
    for (const server of leaked) process.kill(server.pid, 'SIGINT');
    if (leaked.length > 0) {
      // Vitest prints an error thrown here but still exits 0.
      process.exitCode = 1;
      throw new Error(
        `${leaked.length} PostgreSQL server(s) started by the tests were never stopped (now stopped): ${leaked
          .map((server) => server.dataDir)
          .join(', ')}`,
      );
    }
  };
}
