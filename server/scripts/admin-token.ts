/**
 * `pnpm -s admin:token`: prints a bearer access token of the platform super-admin
 * (ONRAMP_ADMIN_EMAIL), e.g. for `POST /api/v1/applications/register`. The token goes to
 * standard output only, never to a log; it is an ordinary session (audited as `auth.sign_in`,
 * method `admin_token`), valid for the access-token lifetime (15 minutes) and revocable like any.
 * Uses the same data dir as `pnpm start` (joining its embedded PostgreSQL when it runs).
 */
import { createPubSub } from 'graphql-yoga';
import { loadConfig } from '../src/env.js';
import { createLogger } from '../src/logger.js';
import { postgresLimitStore } from '../src/modules/auth/lockout.js';
import { AuthService } from '../src/modules/auth/service.js';
import { SessionCache } from '../src/modules/auth/session-cache.js';
import { openProvisioning } from './operator.js';

const config = loadConfig();
// Logs on stderr: standard output carries the token alone, for `$(pnpm -s admin:token)`.
const logger = createLogger({ ...config, logLevel: 'warn' }, process.stderr);
const { db, provisioning } = await openProvisioning(config, logger);
try {
  const auth = new AuthService({
    config,
    logger,
    prisma: db.prisma,
    provisioning,
    limits: postgresLimitStore(db.prisma),
    // A super-admin session sends nothing; a transport that refuses keeps it so.
    mail: {
      name: 'dev',
      send: () => Promise.reject(new Error('admin:token sends no mail')),
      close: () => {},
    },
    sessionsEnded: async () => {},
    // It starts a session and checks none: a bus that is never connected makes every check read.
    sessionCache: new SessionCache({
      pubsub: createPubSub(),
      connected: () => false,
      generation: () => 0,
      sync: async () => false,
    }),
  });
  await auth.bootstrapSuperAdmin();
  const admin = await db.prisma.user.findUniqueOrThrow({ where: { email: config.adminEmail } });
  const session = await auth.startSession(
    admin.id,
    { ip: '127.0.0.1', userAgent: 'pnpm admin:token' },
    'admin_token',
  );
  process.stdout.write(`${session.accessToken}\n`);
} finally {
  await provisioning.close();
  await db.close();
}
