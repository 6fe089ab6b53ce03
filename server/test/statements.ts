/**
 * Counts what code sends to one PostgreSQL database, by async context: the statements a call
 * makes (its awaited work and what it starts) and not the app's background work beside it. For
 * the round-trip ceilings of issue 16 (registration, e-mail code sign-in).
 */
import { AsyncLocalStorage, AsyncResource } from 'node:async_hooks';
import pg from 'pg';

export interface Tally {
  /** Statements and commits of the call itself, event publication left out. */
  statements: number;
  commits: number;
  /**
   * Of the statements, those Prisma's engine sent (its pg adapter asks for rows as arrays);
   * the others went straight through a pool (db/raw.ts, request-scope.ts `read`).
   */
  viaEngine: number;
  /**
   * Event publications (`pg_notify` on the event bus's own pool): fire-and-forget and batched by
   * timing, so their number moves with the machine's load; pubsub.test.ts holds the batching.
   */
  publishes: number;
  /** Clients inside a BEGIN … COMMIT. */
  open: Set<pg.Client>;
  texts: string[];
}

export interface StatementCounter {
  count<T>(call: () => Promise<T>): Promise<{ value: T; tally: Tally }>;
  /** Runs `work` outside any counted call (background load beside it). */
  outside<T>(work: () => T): T;
  /** Puts pg back as it was. */
  restore(): void;
}

/** What a tally saw, for an assertion's message or a file. */
export function describeTally(tally: Tally): string {
  return `${tally.statements} statements (${tally.viaEngine} through Prisma's engine), ${tally.commits} commits, ${tally.publishes} event publications:\n  ${tally.texts.join('\n  ')}`;
}

/** Patches pg's Client and Pool (for this test file's process) until `restore()`. */
export function countStatements(database: string): StatementCounter {
  const counting = new AsyncLocalStorage<Tally>();
  const query = pg.Client.prototype.query;
  const connect = pg.Pool.prototype.connect;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const tally = counting.getStore();
    if (tally && this.database === database) {
      const first = args[0];
      const text = (typeof first === 'string' ? first : ((first as { text?: string }).text ?? '')).trim();
      const verb = text.split(/\s/, 1)[0]?.toUpperCase() ?? '';
      const engine = (first as { rowMode?: string }).rowMode === 'array';
      tally.texts.push(`${engine ? '[engine] ' : ''}${text.replace(/\s+/g, ' ').slice(0, 80)}`);
      if (text.startsWith('SELECT pg_notify(')) tally.publishes += 1;
      else {
        tally.statements += 1;
        if (engine) tally.viaEngine += 1;
        if (verb === 'BEGIN') tally.open.add(this);
        else if (verb === 'COMMIT') {
          tally.open.delete(this);
          tally.commits += 1;
        } else if (verb === 'ROLLBACK') tally.open.delete(this);
        else if (!tally.open.has(this)) tally.commits += 1;
      }
    }
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  // pg-pool hands a queued caller its client in the context of whoever released it, so with the
  // pool busy a statement was counted for the wrong call (CI saw 55 for 54; 42 with the pool
  // saturated). The callback runs in its own caller's context again.
  pg.Pool.prototype.connect = function (this: pg.Pool, callback?: unknown) {
    const original = connect as (this: pg.Pool, cb?: unknown) => unknown;
    return original.call(
      this,
      typeof callback === 'function'
        ? AsyncResource.bind(callback as (...a: unknown[]) => unknown)
        : callback,
    );
  } as typeof connect;
  return {
    async count(call) {
      const tally: Tally = {
        statements: 0,
        commits: 0,
        viaEngine: 0,
        publishes: 0,
        open: new Set(),
        texts: [],
      };
      const value = await counting.run(tally, call);
      return { value, tally };
    },
    outside: (work) => counting.exit(work),
    restore() {
      pg.Client.prototype.query = query;
      pg.Pool.prototype.connect = connect;
    },
  };
}
