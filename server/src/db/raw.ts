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

/**
 * A transaction on one pooled pg connection ({@link transaction}): what a step's transaction and
 * the hooks run in it get instead of Prisma's `TransactionClient`. Statements are `Prisma.sql`
 * texts, sent parameterised on the transaction's connection.
 */
export interface Transaction {
  /** The rows of `statement`. */
  query<Row>(statement: Prisma.Sql): Promise<Row[]>;
  /** How many rows `statement` touched. */
  execute(statement: Prisma.Sql): Promise<number>;
}

/**
 * Whatever runs raw statements: a client, one of its Prisma transactions (which keeps its own
 * connection), or a {@link Transaction}.
 */
export type RawDb = Pick<Prisma.TransactionClient, '$queryRaw'> | Transaction;
/** {@link RawDb} for statements counted rather than read ({@link execute}). */
export type RawWriteDb = Pick<Prisma.TransactionClient, '$executeRaw'> | Transaction;

class PgTransaction implements Transaction {
  constructor(private readonly client: pg.PoolClient) {}

  async query<Row>(statement: Prisma.Sql): Promise<Row[]> {
    return (await this.client.query(statement.text, statement.values)).rows as Row[];
  }

  async execute(statement: Prisma.Sql): Promise<number> {
    return (await this.client.query(statement.text, statement.values)).rowCount ?? 0;
  }
}

/**
 * Runs `work` in one transaction on a connection of the pool under `db` (BEGIN … COMMIT),
 * without Prisma's engine (an interactive `$transaction` cost ~0.8–1.5 ms of CPU on top of its
 * statements', decision 074). Anything `work` throws rolls it all back and is rethrown; the
 * connection goes back to the pool in every path, destroyed when its ROLLBACK failed (it may be
 * mid-transaction or broken). A caller waits for a free connection as long as it takes, as pg's
 * pool queues it (Prisma gave up after its `maxWait`, and decision 058 then started it again).
 * @throws Error when `db` has no pool recorded (see {@link onPool})
 */
export async function transaction<T>(db: object, work: (tx: Transaction) => Promise<T>): Promise<T> {
  const pool = pools.get(db);
  if (!pool) throw new Error('transaction: no pg pool recorded under this client (db/raw.ts onPool)');
  const client = await pool.connect();
  let broken = false;
  // A connection lost while held (a killed backend) emits 'error' besides failing the statement
  // in flight; the pool listens only to idle ones, and an unheard 'error' would end the process.
  const lost = () => {
    broken = true;
  };
  client.on('error', lost);
  try {
    await client.query('BEGIN');
    const result = await work(new PgTransaction(client));
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {
      broken = true;
    });
    throw error;
  } finally {
    client.off('error', lost);
    client.release(broken);
  }
}

/**
 * Whether `error` is PostgreSQL's unique violation (23505) of `constraint` (its index's name),
 * as a {@link Transaction}'s statement or one through the pool throws it.
 */
export function isUniqueViolation(error: unknown, constraint: string): boolean {
  const { code, constraint: violated } = (error ?? {}) as { code?: unknown; constraint?: unknown };
  return code === '23505' && violated === constraint;
}

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
 * The rows of `statement`: on the connection of a {@link Transaction}; through the pool of `db`
 * when it has one; through Prisma otherwise (a Prisma transaction client: its statements must
 * stay on its connection).
 */
export async function queryRows<Row>(db: RawDb, statement: Prisma.Sql): Promise<Row[]> {
  if (db instanceof PgTransaction) return db.query<Row>(statement);
  const pool = pools.get(db);
  if (!pool) return (db as Pick<Prisma.TransactionClient, '$queryRaw'>).$queryRaw<Row[]>(statement);
  const { rows } = await pool.query(statement.text, statement.values);
  return rows as Row[];
}

/** {@link queryRows} for a statement whose count of rows touched is its answer (`$executeRaw`). */
export async function execute(db: RawWriteDb, statement: Prisma.Sql): Promise<number> {
  if (db instanceof PgTransaction) return db.execute(statement);
  const pool = pools.get(db);
  if (!pool) return (db as Pick<Prisma.TransactionClient, '$executeRaw'>).$executeRaw(statement);
  return (await pool.query(statement.text, statement.values)).rowCount ?? 0;
}
