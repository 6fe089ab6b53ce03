/**
 * `pnpm db:psql [psql arguments]`: psql on the central database: DATABASE_URL when set, otherwise
 * the embedded PostgreSQL of the data dir (the one `pnpm start` uses, joined while it runs,
 * started for the session and stopped after otherwise). The password travels in PGPASSWORD,
 * never on a command line.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { EMBEDDED_CENTRAL_DATABASE, ensureDatabase } from '../src/db/database.js';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { databaseUrl } from '../src/db/sql.js';
import { loadConfig, redactUrl } from '../src/env.js';
import { createLogger } from '../src/logger.js';

const config = loadConfig();
const logger = createLogger({ ...config, logLevel: 'warn' }, process.stderr);
const embedded = config.databaseUrl
  ? undefined
  : await startEmbeddedPostgres({ dir: join(config.dataDir, 'postgres'), logger });
let code = 1;
try {
  let url = config.databaseUrl;
  if (!url && embedded) {
    await ensureDatabase(embedded.url, EMBEDDED_CENTRAL_DATABASE);
    url = databaseUrl(embedded.url, EMBEDDED_CENTRAL_DATABASE);
  }
  const parsed = new URL(url as string);
  const env = {
    ...process.env,
    // The embedded server's socket directory when it has one (libpq's `host` parameter).
    PGHOST: parsed.searchParams.get('host') ?? parsed.hostname,
    PGPORT: parsed.port || '5432',
    PGUSER: decodeURIComponent(parsed.username),
    PGPASSWORD: decodeURIComponent(parsed.password),
    PGDATABASE: decodeURIComponent(parsed.pathname.slice(1)),
  };
  const psql = spawn('psql', process.argv.slice(2), { stdio: 'inherit', env });
  code = await new Promise<number>((done) => {
    psql.once('error', (error: NodeJS.ErrnoException) => {
      process.stderr.write(
        error.code === 'ENOENT'
          ? `psql is not installed (Debian/Ubuntu: apt-get install postgresql-client). Connect with any client to ${redactUrl(url as string)}` +
              (embedded
                ? `; the password is in ${join(config.dataDir, 'postgres', 'embedded.json')}\n`
                : '\n')
          : `psql failed to start: ${error.message}\n`,
      );
      done(127);
    });
    psql.once('exit', (exit) => done(exit ?? 1));
  });
} finally {
  await embedded?.stop();
}
process.exit(code);
