/**
 * The PostgreSQL side of a move (docs/decisions/049): a publication of the source database, a
 * subscription of the target to it, the waits on its progress, the write freeze, sequences and
 * row counts. Every identifier is quoted; every operation tolerates a partial earlier attempt, so
 * a step's undo can run after its own failure.
 */
import type pg from 'pg';
import { quoteIdent } from '../../db/sql.js';
import { quoteLiteral } from '../provisioning/index.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

/** The migrator's own table: the target has its rows already (cloned at the same version). */
const MIGRATIONS_TABLE = '_prisma_migrations';

/** How often the waits look at the replication's progress. */
const POLL_MS = 10;

/**
 * The name of a run's publication, subscription and replication slot, all three the same: only
 * `[a-z0-9_]`, so it is valid as each, and recognisable (`onramp_move_…`) to an operator.
 */
export function replicationName(runId: string): string {
  return `onramp_move_${runId.replaceAll('-', '').slice(0, 16)}`;
}

/**
 * The clinic tables a move carries: every table of the public schema but the migrations table.
 * @throws when one has no primary key: its updates and deletes could not be replicated.
 */
export async function movedTables(source: Queryable): Promise<string[]> {
  const { rows } = await source.query<{ name: string; keyed: boolean }>(
    `SELECT c.relname AS name,
            c.relreplident <> 'd' OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS keyed
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> $1
      ORDER BY c.relname`,
    [MIGRATIONS_TABLE],
  );
  const unkeyed = rows.filter((row) => !row.keyed).map((row) => row.name);
  if (unkeyed.length > 0)
    throw new Error(`tables without a primary key cannot be moved online: ${unkeyed.join(', ')}`);
  return rows.map((row) => row.name);
}

export async function createPublication(source: Queryable, name: string, tables: string[]): Promise<void> {
  const list = tables.map((table) => `public.${quoteIdent(table)}`).join(', ');
  await source.query(`CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${list}`);
}

export async function dropPublication(source: Queryable, name: string): Promise<void> {
  await source.query(`DROP PUBLICATION IF EXISTS ${quoteIdent(name)}`);
}

/**
 * Subscribes the target database to the source's publication; PostgreSQL creates the slot on
 * the source and starts the initial copy. `conninfo` reaches the source database as its admin: it
 * is kept in the target's pg_subscription (readable by superusers only) until the subscription
 * is dropped, and never logged. Its commits are synchronous so that the slot's confirmed
 * position follows the applied writes closely (the final catch-up waits on it).
 */
export async function createSubscription(target: Queryable, name: string, conninfo: string): Promise<void> {
  await target.query(
    `CREATE SUBSCRIPTION ${quoteIdent(name)} CONNECTION ${quoteLiteral(conninfo)} PUBLICATION ${quoteIdent(name)}
       WITH (copy_data = true, create_slot = true, slot_name = ${quoteLiteral(name)}, binary = true, synchronous_commit = 'on')`,
  );
}

/**
 * Drops the subscription and, through it, its slot on the source. When the source cannot be
 * reached for that, the subscription is detached from its slot first and the slot dropped on the
 * source directly (`sourceAdmin`) when it answers; a slot left behind would hold the source's WAL.
 */
export async function dropSubscription(
  target: Queryable,
  name: string,
  sourceAdmin: () => Promise<Queryable>,
): Promise<void> {
  const { rowCount } = await target.query('SELECT 1 FROM pg_subscription WHERE subname = $1', [name]);
  if (rowCount) {
    try {
      await target.query(`DROP SUBSCRIPTION ${quoteIdent(name)}`);
    } catch {
      await target.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} DISABLE`);
      await target.query(`ALTER SUBSCRIPTION ${quoteIdent(name)} SET (slot_name = NONE)`);
      await target.query(`DROP SUBSCRIPTION ${quoteIdent(name)}`);
    }
  }
  await dropSlot(await sourceAdmin(), name);
}

/** Drops the replication slot `name` on the source, ending the session still using it. */
export async function dropSlot(admin: Queryable, name: string): Promise<void> {
  const { rows } = await admin.query<{ pid: number | null }>(
    'SELECT active_pid AS pid FROM pg_replication_slots WHERE slot_name = $1',
    [name],
  );
  if (rows.length === 0) return;
  if (rows[0]?.pid) await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
  await waitFor(
    async () =>
      (await admin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active', [name]))
        .rowCount === 0,
    10_000,
    'the replication slot stayed in use',
  );
  await admin.query('SELECT pg_drop_replication_slot($1)', [name]);
}

/** Fails fast when the subscription's workers report errors (they would retry forever). */
async function checkSubscriptionErrors(target: Queryable, name: string): Promise<void> {
  const { rows } = await target.query<{ apply: string; sync: string }>(
    'SELECT apply_error_count::text AS apply, sync_error_count::text AS sync FROM pg_stat_subscription_stats WHERE subname = $1',
    [name],
  );
  const row = rows[0];
  if (row && (Number(row.apply) > 0 || Number(row.sync) > 0))
    throw new Error(
      `the subscription reported ${row.sync} copy and ${row.apply} apply errors (see the target server's log)`,
    );
}

/** Waits until every table's initial copy is done and it follows the stream (srsubstate `r`). */
export async function waitForInitialCopy(
  target: Queryable,
  name: string,
  tables: number,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    async () => {
      await checkSubscriptionErrors(target, name);
      const { rows } = await target.query<{ total: number; ready: number }>(
        `SELECT count(*)::int AS total, count(*) FILTER (WHERE r.srsubstate = 'r')::int AS ready
           FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`,
        [name],
      );
      return rows[0]?.total === tables && rows[0]?.ready === tables;
    },
    timeoutMs,
    'the initial copy did not finish in time',
  );
}

/**
 * A position of the source's WAL past every write committed so far, flushed: what the target must
 * have applied to be caught up. Not pg_current_wal_lsn(): with asynchronous commit a committed
 * write may still sit in the WAL buffers, past that position and not yet sent to subscribers. A
 * logical message with `flush` (outside any clinic database: nothing replicates it) is inserted
 * after all of them and flushes them.
 */
export async function currentLsn(sourceAdmin: Queryable): Promise<string> {
  const { rows } = await sourceAdmin.query<{ lsn: string }>(
    "SELECT pg_logical_emit_message(false, 'onramp_move', 'catch-up', true)::text AS lsn",
  );
  return rows[0]?.lsn as string;
}

/**
 * Waits until the target has applied and flushed everything up to `lsn` of the source: the
 * slot's confirmed position, which the subscriber reports after its own commit.
 */
export async function waitForLsn(
  source: Queryable,
  target: Queryable,
  name: string,
  lsn: string,
  timeoutMs: number,
): Promise<void> {
  await waitFor(
    async () => {
      const { rows } = await source.query<{ done: boolean }>(
        'SELECT confirmed_flush_lsn >= $2::pg_lsn AS done FROM pg_replication_slots WHERE slot_name = $1',
        [name, lsn],
      );
      if (rows.length === 0) throw new Error('the replication slot is gone');
      if (rows[0]?.done) return true;
      await checkSubscriptionErrors(target, name);
      return false;
    },
    timeoutMs,
    'the target did not catch up in time',
  );
}

/**
 * The write freeze: the clinic role may not log in, and its sessions are ended — on the source
 * server only (roles are per server). Returns once none is left, so that every write it made is
 * in the source's WAL.
 */
export async function freezeRole(sourceAdmin: Queryable, role: string): Promise<void> {
  await sourceAdmin.query(`ALTER ROLE ${quoteIdent(role)} NOLOGIN`);
  await waitFor(
    async () => {
      const { rows } = await sourceAdmin.query<{ n: number }>(
        'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE usename = $1',
        [role],
      );
      return rows[0]?.n === 0;
    },
    10_000,
    "the clinic role's sessions did not end",
  );
}

export async function unfreezeRole(sourceAdmin: Queryable, role: string): Promise<void> {
  await sourceAdmin.query(`ALTER ROLE ${quoteIdent(role)} LOGIN`);
}

/** Sets every sequence of the target to the source's value (logical replication does not). */
export async function copySequences(source: Queryable, target: Queryable): Promise<number> {
  const { rows } = await source.query<{ schema: string; name: string }>(
    "SELECT schemaname AS schema, sequencename AS name FROM pg_sequences WHERE schemaname = 'public'",
  );
  for (const { schema, name } of rows) {
    const qualified = `${quoteIdent(schema)}.${quoteIdent(name)}`;
    const value = await source.query<{ last_value: string; is_called: boolean }>(
      `SELECT last_value::text, is_called FROM ${qualified}`,
    );
    const current = value.rows[0];
    if (!current) continue;
    await target.query('SELECT setval($1::regclass, $2::bigint, $3)', [
      qualified,
      current.last_value,
      current.is_called,
    ]);
  }
  return rows.length;
}

/** Rows of each table, counted in one snapshot. */
export async function countRows(db: Queryable, tables: string[]): Promise<Record<string, number>> {
  if (tables.length === 0) return {};
  const select = tables
    .map((table, i) => `(SELECT count(*) FROM public.${quoteIdent(table)})::bigint AS c${i}`)
    .join(', ');
  const { rows } = await db.query<Record<string, string>>(`SELECT ${select}`);
  const row = rows[0] ?? {};
  return Object.fromEntries(tables.map((table, i) => [table, Number(row[`c${i}`])]));
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, message: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
}
