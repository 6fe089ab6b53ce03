/**
 * Raw statements straight through the pg pool under a Prisma client, without Prisma's engine
 * (~0.4 ms of CPU per statement, bench/README.md `otp`; docs/decisions/066). The same
 * `Prisma.sql` statement, sent parameterised (`$1…`, the extended protocol): no value is ever
 * inlined. pg maps results itself: int4/float8 as numbers, timestamptz as Date, json as objects,
 * but int8 and numeric as strings (Prisma gave BigInt and Decimal), so a statement read here
 * casts those it returns.
 */
import type pg from 'pg';
import type { Prisma } from '../generated/central/client.js';

/** Whatever runs raw statements: a client, or one of its transactions (which keeps its own connection). */
export type RawDb = Pick<Prisma.TransactionClient, '$queryRaw'>;
/** {@link RawDb} for statements counted rather than read ({@link execute}). */
export type RawWriteDb = Pick<Prisma.TransactionClient, '$executeRaw'>;

/** The pool under each client made on one (see {@link onPool}). */
const pools = new WeakMap<object, pg.Pool>();

/** Records that `client` runs on `pool`, for {@link queryRows}. @returns `client`. */
export function onPool<Client extends object>(client: Client, pool: pg.Pool): Client {
  pools.set(client, pool);
  return client;
}

/** The pool `client` runs on, if recorded by {@link onPool}. */
export function poolOf(client: object): pg.Pool | undefined {
  return pools.get(client);
}

/**
 * The rows of `statement`, through the pool of `db` when it has one; through Prisma otherwise
 * (a transaction client: its statements must stay on its connection).
 */
export async function queryRows<Row>(db: RawDb, statement: Prisma.Sql): Promise<Row[]> {
  const pool = pools.get(db);
  if (!pool) return db.$queryRaw<Row[]>(statement);
  const { rows } = await pool.query(statement.text, statement.values);
  return rows as Row[];
}

/** {@link queryRows} for a statement whose count of rows touched is its answer (`$executeRaw`). */
export async function execute(db: RawWriteDb, statement: Prisma.Sql): Promise<number> {
  const pool = pools.get(db);
  if (!pool) return db.$executeRaw(statement);
  return (await pool.query(statement.text, statement.values)).rowCount ?? 0;
}
