/**
 * What a module adds to a step without writing the step again: work inside the step's central
 * transaction (registration's user rows, its verification e-mail at commit). A hook that throws
 * fails the step, and its transaction rolls back whole.
 */
import type { Prisma } from '../../../../generated/central/client.js';

export type Transaction = Prisma.TransactionClient;

export interface TransactionHook<S> {
  /** Inside the step's transaction, after the step's own writes. */
  run?(tx: Transaction, state: S): Promise<void>;
  /** Inside the undo's transaction, before the step's own writes are undone. */
  undo?(tx: Transaction, state: S): Promise<void>;
}
