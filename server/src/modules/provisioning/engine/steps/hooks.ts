/**
 * What a module adds to a step without writing the step again: work inside the step's central
 * transaction (registration's user rows, its verification e-mail at commit). A hook that throws
 * fails the step, and its transaction rolls back whole. The transaction is pg's, beside Prisma's
 * engine (db/raw.ts `transaction`, decision 074): a hook's statements are `Prisma.sql` texts.
 */
import type { Transaction } from '../../../../db/raw.js';

export type { Transaction };

export interface TransactionHook<S> {
  /**
   * Before the step's transaction opens: what `run` will need and may still be on its way (a
   * registration's password hash), so no transaction stays open waiting for it.
   */
  prepare?(state: S): Promise<void>;
  /** Inside the step's transaction, after the step's own writes. */
  run?(tx: Transaction, state: S): Promise<void>;
  /** Inside the undo's transaction, before the step's own writes are undone. */
  undo?(tx: Transaction, state: S): Promise<void>;
}
