/**
 * Database bootstrap: the central PostgreSQL (embedded or DATABASE_URL), its migrations, the
 * clinic database servers and their clinic templates.
 */
import { join, resolve } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import type { Config } from '../env.js';
import { redactUrl } from '../env.js';
import { PrismaClient } from '../generated/central/client.js';
import { installJobSchema } from '../jobs/index.js';
import type { Logger } from '../logger.js';
import { startEmbeddedPostgres } from './embedded.js';
import { appliedMigrations, type Migration, migrate, readMigrations } from './migrator.js';
import { CENTRAL_MIGRATIONS_DIR, CLINIC_MIGRATIONS_DIR, REPO_ROOT } from './paths.js';
import { onPool } from './raw.js';
import { createRequestPrisma, ensureRequestRole, requestPool, requestRolePassword } from './request-scope.js';
import { type ClinicServer, openClinicServers, type ServerRegistry } from './servers.js';
import { databaseUrl, probedConnection, quoteIdent, withClient } from './sql.js';
import { retryTransactionStarts } from './transaction-start.js';

export type CentralPrisma = PrismaClient;

/** Name of the central database created inside the embedded server. */
export const EMBEDDED_CENTRAL_DATABASE = 'onramp';

export type { ClinicServer } from './servers.js';

export interface Databases {
  centralUrl: string;
  /** Tags the clinic databases and roles this deployment owns (see the `deployment` table). */
  deploymentId: string;
  /** Owner connection: platform work (sign-in lookups, provisioning, jobs, the reconciler). */
  prisma: CentralPrisma;
  /**
   * Request connection (a member of `onramp_app`, subject to row-level security): clinic-scoped
   * reads and writes made on someone's behalf, through `scopedRunner` (see request-scope.ts).
   */
  requestPrisma: CentralPrisma;
  /** Small pool beside Prisma's for health checks and raw admin SQL on the central database. */
  pool: pg.Pool;
  /** The clinic database servers reachable at start (see `servers` for the live view). */
  clinicServers: ClinicServer[];
  servers: ServerRegistry;
  clinicMigrations: Migration[];
  /** Throws when the central database is unreachable or behind its migrations. */
  checkReady(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenDatabasesOptions {
  /** Tests pass an already migrated database; migrations are then only verified. */
  skipMigrations?: boolean;
  /**
   * When another live process owns the data dir's embedded PostgreSQL: `join` it as a client
   * (commands, benches), or `refuse` to start (a second server), naming that process.
   * @default 'join'
   */
  whenEmbeddedOwned?: 'join' | 'refuse';
}

export async function openDatabases(
  config: Config,
  logger: Logger,
  options: OpenDatabasesOptions = {},
): Promise<Databases> {
  const embedded = config.databaseUrl
    ? undefined
    : await startEmbeddedPostgres({
        dir: join(config.dataDir, 'postgres'),
        logger,
        whenOwned: options.whenEmbeddedOwned,
      });
  try {
    let centralUrl = config.databaseUrl;
    if (!centralUrl && embedded) {
      await ensureDatabase(embedded.url, EMBEDDED_CENTRAL_DATABASE);
      centralUrl = databaseUrl(embedded.url, EMBEDDED_CENTRAL_DATABASE);
    }
    if (!centralUrl) throw new Error('no central database');

    const centralMigrations = readMigrations(CENTRAL_MIGRATIONS_DIR);
    if (!options.skipMigrations) {
      const { applied } = await withClient(centralUrl, (client) => migrate(client, centralMigrations));
      if (applied.length > 0) logger.info({ applied }, 'central migrations applied');
      await installJobSchema(centralUrl, logger);
    }

    const clinicMigrations = readMigrations(
      config.clinicMigrationsDir ? resolve(REPO_ROOT, config.clinicMigrationsDir) : CLINIC_MIGRATIONS_DIR,
    );
    const serverUrls = config.clinicDatabaseServers.length > 0 ? config.clinicDatabaseServers : [centralUrl];
    const servers = await openClinicServers({ centralUrl, urls: serverUrls, clinicMigrations, logger });
    const clinicServers = [...servers.byId.values()];

    // Central sessions are probed (decision 092): a vanished host's backends, their open
    // transactions and row locks with them, end in about 25 s instead of TCP's 2 hours.
    const pool = new pg.Pool({ ...probedConnection(centralUrl), max: 4, application_name: 'onramp-ready' });
    pool.on('error', (error) => logger.warn({ err: error }, 'idle central connection lost'));
    // A burst can keep every connection busy past a transaction's maxWait: started again.
    // On a pool of its own, so the hottest raw statements can skip Prisma's engine (db/raw.ts).
    const ownerPool = new pg.Pool({ ...probedConnection(centralUrl), max: 10, application_name: 'onramp' });
    ownerPool.on('error', (error) => logger.warn({ err: error }, 'idle central connection lost'));
    const prisma = onPool(
      retryTransactionStarts(
        new PrismaClient({ adapter: new PrismaPg(ownerPool, { disposeExternalPool: true }) }),
      ),
      ownerPool,
    );

    const centralDatabase = decodeURIComponent(new URL(centralUrl).pathname.slice(1));
    const requestPassword = requestRolePassword(config.encryptionKey, centralDatabase);
    const { deploymentId, requestRole } = await withClient(centralUrl, async (client) => {
      await client.query('INSERT INTO deployment DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING');
      const { rows } = await client.query<{ id: string }>('SELECT id FROM deployment');
      return {
        deploymentId: rows[0]?.id as string,
        requestRole: await ensureRequestRole(client, centralDatabase, requestPassword),
      };
    });
    const requestConnections = requestPool(centralUrl, requestRole, requestPassword);
    requestConnections.on('error', (error) => logger.warn({ err: error }, 'idle request connection lost'));
    const requestPrisma = createRequestPrisma(requestConnections);
    logger.info(
      { central: redactUrl(centralUrl), clinicServers: clinicServers.map((server) => server.name) },
      'databases ready',
    );
    const expected = centralMigrations.map((migration) => migration.name);

    return {
      centralUrl,
      deploymentId,
      prisma,
      requestPrisma,
      pool,
      clinicServers,
      servers,
      clinicMigrations,
      async checkReady() {
        const client = await pool.connect();
        try {
          const applied = new Set((await appliedMigrations(client)).map((migration) => migration.name));
          const missing = expected.filter((name) => !applied.has(name));
          if (missing.length > 0) throw new Error(`central migrations not applied: ${missing.join(', ')}`);
        } finally {
          client.release();
        }
      },
      async close() {
        await Promise.all(
          [prisma, requestPrisma].map((client) =>
            client.$disconnect().catch((error) => logger.warn({ err: error }, 'prisma disconnect failed')),
          ),
        );
        // The pools under Prisma too: Prisma ends them only if its engine ever connected, and the
        // hottest statements bypass it (RunScoped.read, db/raw.ts). A second end only rejects.
        await Promise.all(
          [pool, ownerPool, requestConnections].map((connections) => connections.end().catch(() => {})),
        );
        await servers.close();
        await embedded?.stop();
      },
    };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}

/** CREATE DATABASE if missing; concurrent callers race safely on the unique name. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<void> {
  await withClient(adminUrl, async (client) => {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return;
    try {
      await client.query(`CREATE DATABASE ${quoteIdent(name)} ENCODING 'UTF8'`);
    } catch (error) {
      // 42P04 duplicate_database, 23505 unique_violation: another process created it first.
      const code = (error as { code?: string }).code;
      if (code !== '42P04' && code !== '23505') throw error;
    }
  });
}
