/**
 * Tenant isolation in the central database (decision 011): requests made on behalf of someone
 * read clinic-scoped tables through a connection logged in as a member of `onramp_app` (not an
 * owner, no BYPASSRLS), inside a transaction that first sets who is asking. The policies of
 * migration 20261123000000_row_level_security then only show that clinic's rows, whatever the
 * query says.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, createHmac } from 'node:crypto';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import type { Prisma } from '../generated/central/client.js';
import { PrismaClient } from '../generated/central/client.js';
import type { UserRole } from '../generated/central/enums.js';
import { isUuid } from '../ids.js';
import { onPool, poolOf } from './raw.js';
import { probedConnection, quoteIdent } from './sql.js';
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
  /**
   * A read under the same scope in one round trip and without Prisma's engine, for the hottest
   * reads (docs/decisions/066): `SELECT set_config(…); <statement>` as one simple-protocol
   * message, which PostgreSQL runs as one implicit transaction, so the settings (local to it)
   * hold for the read and end with it. Resolves to the rows of `statement`.
   */
  read<Row>(statement: UuidStatement): Promise<Row[]>;
};

/** A read whose only values are uuids, checked and inlined: made by {@link uuidSql}. */
export interface UuidStatement {
  readonly text: string;
}

/**
 * `uuidSql\`SELECT … WHERE id = ${id}\``: a statement for {@link RunScoped.read}, whose values
 * must all be uuids (anything else throws before a statement is sent), inlined as `'…'::uuid`.
 */
export function uuidSql(strings: TemplateStringsArray, ...ids: string[]): UuidStatement {
  if (!ids.every(isUuid)) throw new Error('not a uuid');
  return { text: strings.reduce((text, part, index) => `${text}'${ids[index - 1]}'::uuid${part}`) };
}

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

/** The pool of the request role of `centralUrl`'s database (handed to {@link createRequestPrisma}). */
export function requestPool(centralUrl: string, role: string, password: string): pg.Pool {
  const url = new URL(centralUrl);
  url.username = role;
  url.password = password;
  return new pg.Pool({ ...probedConnection(url.toString()), max: 5, application_name: 'onramp-request' });
}

/**
 * A Prisma client on `pool` (the request role's), whose transactions begin already scoped when
 * run by a {@link scopedRunner}: the scope's settings travel in the statement that begins the
 * transaction (`BEGIN; SELECT set_config(…)`, one round trip) rather than in a statement of
 * their own after it. Prisma offers no hook at the start of a transaction, so each connection's
 * `query` recognises the adapter's `BEGIN` (docs/decisions/059). Should a future adapter begin
 * differently, nothing is set and the transaction sees no clinic's rows: it fails closed, and
 * the row-level security tests say so. Closing the client ends the pool.
 */
export function createRequestPrisma(pool: pg.Pool): PrismaClient {
  pool.on('connect', beginScoped);
  // Every request's work is a transaction here: under a burst one may not start in time (retried).
  const prisma = retryTransactionStarts(
    new PrismaClient({ adapter: new PrismaPg(pool, { disposeExternalPool: true }) }),
  );
  return onPool(prisma, pool);
}

/** The scope statement of the scoped run in progress (the transactions it starts send it at BEGIN). */
const runningScope = new AsyncLocalStorage<string>();

function beginScoped(client: pg.PoolClient): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((config: unknown, ...rest: unknown[]) => {
    const statement = runningScope.getStore();
    // The adapter's BEGIN has no parameters, so it goes by the simple protocol, which takes
    // several statements at once: the scope's values are therefore inlined, once checked.
    if (
      statement &&
      typeof config === 'object' &&
      config !== null &&
      (config as pg.QueryConfig).text === 'BEGIN'
    ) {
      return query({ ...(config as pg.QueryConfig), text: `BEGIN; ${statement}` }, ...rest);
    }
    return query(config, ...rest);
  }) as typeof client.query;
}

const ROLE = /^[A-Z_]{1,40}$/;

/** set_config of the scope, its values inlined: only uuids and role names, checked before anything is sent. */
function scopeStatement({ clinicId, role, userId }: RequestScope): string {
  if (
    (clinicId !== null && !isUuid(clinicId)) ||
    (userId !== null && !isUuid(userId)) ||
    (role !== null && !ROLE.test(role))
  ) {
    throw new Error('not a valid request scope');
  }
  return `SELECT set_config('onramp.clinic_id', '${clinicId ?? ''}', true),
    set_config('onramp.role', '${role ?? ''}', true),
    set_config('onramp.user_id', '${userId ?? ''}', true)`;
}

/** The statement that scopes a transaction; its settings end with it. */
function setScope(db: Pick<PrismaClient, '$executeRaw'>, scope: RequestScope) {
  return db.$executeRaw`SELECT set_config('onramp.clinic_id', ${scope.clinicId ?? ''}, true),
    set_config('onramp.role', ${scope.role ?? ''}, true),
    set_config('onramp.user_id', ${scope.userId ?? ''}, true)`;
}

/** A function running transactions on `prisma` (a {@link createRequestPrisma} client) scoped to `scope`. */
export function scopedRunner(prisma: PrismaClient, scope: RequestScope): RunScoped {
  let client: PrismaClient | undefined;
  let statement: string | undefined;
  const run = <T>(work: (tx: ScopedTransaction) => Promise<T>): Promise<T> => {
    try {
      statement ??= scopeStatement(scope);
    } catch (error) {
      return Promise.reject(error);
    }
    return runningScope.run(statement, () => prisma.$transaction(work));
  };
  const read = async <Row>({ text }: UuidStatement): Promise<Row[]> => {
    statement ??= scopeStatement(scope);
    const pool = poolOf(prisma);
    if (!pool) throw new Error('not a request client (createRequestPrisma)');
    // Two statements: pg answers with one result each; the read's is the last.
    const results = (await pool.query(`${statement};\n${text}`)) as unknown as pg.QueryResult[];
    return (results.at(-1)?.rows ?? []) as Row[];
  };
  // Not Object.assign, which would call the getter: the client is made on first use (an
  // extended Prisma client per request cost ~50 µs, and most never load a relation).
  return Object.defineProperties(run, {
    client: {
      get: () => {
        client ??= scopedClient(prisma, scope);
        return client;
      },
    },
    as: { value: (other: RequestScope) => scopedRunner(prisma, other) },
    read: { value: read },
  }) as RunScoped;
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
