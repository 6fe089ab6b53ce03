/**
 * Tenant isolation in the central database (decision 011): requests made on behalf of someone
 * read clinic-scoped tables through a connection logged in as a member of `onramp_app` (not an
 * owner, no BYPASSRLS), inside a transaction that first sets who is asking. The policies of
 * migration 20261123000000_row_level_security then only show that clinic's rows, whatever the
 * query says.
 */
import { createHash, createHmac } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import type { Prisma } from '../generated/central/client.js';
import { PrismaClient } from '../generated/central/client.js';
import type { UserRole } from '../generated/central/enums.js';
import { quoteIdent } from './sql.js';
import { retryTransactionStarts } from './transaction-start.js';

/** Who a request acts for; `clinicId` null for super-admins and anonymous callers. */
export interface RequestScope {
  userId: string | null;
  role: UserRole | null;
  clinicId: string | null;
}

export type ScopedTransaction = Prisma.TransactionClient;

/** Runs `work` in one transaction of the request connection, scoped to `scope`. */
export type RunScoped = (<T>(work: (tx: ScopedTransaction) => Promise<T>) => Promise<T>) & {
  /**
   * The same scope as a Prisma client whose every operation is its own scoped transaction: for
   * the Pothos prisma plugin, which loads relations through a client (builder.ts).
   */
  readonly client: PrismaClient;
  /**
   * A runner scoped to another principal: the one an operation made by an anonymous caller has
   * just created or authenticated (a registration's admin, a signed-in user), read as themselves.
   */
  as(scope: RequestScope): RunScoped;
};

/**
 * The login role of one central database: role names are global to a PostgreSQL server, and
 * several central databases (tests, staging beside production) may share one server.
 */
export function requestRoleName(database: string): string {
  return `onramp_app_${createHash('sha256').update(database).digest('hex').slice(0, 16)}`;
}

/** Derived from ENCRYPTION_KEY, so every instance computes the same password without storing it. */
export function requestRolePassword(encryptionKey: Buffer, database: string): string {
  return createHmac('sha256', encryptionKey).update(`central-request-role:${database}`).digest('hex');
}

/**
 * Creates (or re-keys) the login role of `database`, a member of `onramp_app`. Needs the
 * CREATEROLE privilege on the central connection; run at every start.
 */
export async function ensureRequestRole(
  client: pg.ClientBase,
  database: string,
  password: string,
): Promise<string> {
  const role = requestRoleName(database);
  // The password is hex (see requestRolePassword), so inlining it cannot break the literal.
  const literal = `'${password.replaceAll("'", "''")}'`;
  // Instances of a cluster start at once: concurrent CREATE or ALTER of one role fail ("tuple
  // concurrently updated"), so they take turns.
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`onramp:request-role:${role}`]);
    const { rowCount } = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
    if (rowCount) {
      await client.query(`ALTER ROLE ${quoteIdent(role)} LOGIN PASSWORD ${literal}`);
      await client.query(`GRANT onramp_app TO ${quoteIdent(role)}`);
    } else {
      await client.query(
        `CREATE ROLE ${quoteIdent(role)} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD ${literal} IN ROLE onramp_app`,
      );
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
  return role;
}

/** A Prisma client logged in as the request role of `centralUrl`'s database. */
export function createRequestPrisma(centralUrl: string, role: string, password: string): PrismaClient {
  const url = new URL(centralUrl);
  url.username = role;
  url.password = password;
  // Every request's work is a transaction here: under a burst one may not start in time (retried).
  return retryTransactionStarts(
    new PrismaClient({
      adapter: new PrismaPg({ connectionString: url.toString(), max: 5, application_name: 'onramp-request' }),
    }),
  );
}

/** The statement that scopes a transaction; its settings end with it. */
function setScope(db: Pick<PrismaClient, '$executeRaw'>, scope: RequestScope) {
  return db.$executeRaw`SELECT set_config('onramp.clinic_id', ${scope.clinicId ?? ''}, true),
    set_config('onramp.role', ${scope.role ?? ''}, true),
    set_config('onramp.user_id', ${scope.userId ?? ''}, true)`;
}

/** A function running transactions on `prisma` scoped to `scope`. */
export function scopedRunner(prisma: PrismaClient, scope: RequestScope): RunScoped {
  let client: PrismaClient | undefined;
  const run = <T>(work: (tx: ScopedTransaction) => Promise<T>): Promise<T> =>
    prisma.$transaction(async (tx) => {
      await setScope(tx, scope);
      return work(tx);
    });
  return Object.assign(run, {
    get client() {
      // Made on first use: most requests never load a relation through the plugin.
      client ??= scopedClient(prisma, scope);
      return client;
    },
    as: (other: RequestScope) => scopedRunner(prisma, other),
  });
}

/** `prisma` with every model operation wrapped in a transaction that first sets `scope`. */
function scopedClient(prisma: PrismaClient, scope: RequestScope): PrismaClient {
  return prisma.$extends({
    query: {
      $allModels: {
        async $allOperations({ args, query }) {
          const [, result] = await prisma.$transaction([setScope(prisma, scope), query(args)]);
          return result;
        },
      },
    },
  }) as unknown as PrismaClient;
}
