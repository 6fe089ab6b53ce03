/**
 * A transaction that cannot start in time (every connection of the pool busy past `maxWait`) is
 * started again instead of failing the request (docs/decisions/058).
 */
import { PrismaPg } from '@prisma/adapter-pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { PrismaClient } from '../generated/central/client.js';
import { isTransactionStartTimeout, retryTransactionStarts } from './transaction-start.js';

const admin = inject('pgAdminUrl');

/** A client of one connection that waits 100 ms at most for it. */
const oneConnection = () =>
  new PrismaClient({
    adapter: new PrismaPg({ connectionString: admin, max: 1 }),
    transactionOptions: { maxWait: 100 },
  });

describe('transactions that cannot start in time', () => {
  const clients: PrismaClient[] = [];
  afterAll(() => Promise.all(clients.map((client) => client.$disconnect())));
  const client = (retrying: boolean) => {
    const made = oneConnection();
    clients.push(made);
    return retrying ? retryTransactionStarts(made, { attempts: 10, backoffMs: 50 }) : made;
  };
  /** Holds the only connection in a transaction for `ms` (connected first: a connection takes a while). */
  const hold = async (prisma: PrismaClient, ms: number) => {
    await prisma.$queryRaw`SELECT 1`;
    const held = prisma.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe(`SELECT pg_sleep(${ms / 1000})`);
      },
      { timeout: ms + 5_000 },
    );
    await new Promise((done) => setTimeout(done, 50));
    // Wrapped: an async function's returned promise would be awaited with it.
    return { done: held };
  };

  it('fail with P2028 when the pool is busy past maxWait (the failure a burst showed)', async () => {
    const prisma = client(false);
    const held = await hold(prisma, 600);
    const error = await prisma
      .$transaction(async (tx) => tx.$queryRaw`SELECT 1`)
      .catch((caught: unknown) => caught);
    expect(isTransactionStartTimeout(error)).toBe(true);
    await held.done;
  });

  it('are started again once a connection is free: the callback runs once, the answer comes back', async () => {
    const prisma = client(true);
    const held = await hold(prisma, 600);
    let runs = 0;
    const answer = await prisma.$transaction(async (tx) => {
      runs += 1;
      return tx.$queryRaw<{ one: number }[]>`SELECT 1::int AS one`;
    });
    expect(answer).toEqual([{ one: 1 }]);
    expect(runs).toBe(1);
    await held.done;
  });

  it('a failure once started is not retried: the callback ran', async () => {
    const prisma = client(true);
    let runs = 0;
    await expect(
      prisma.$transaction(async (tx) => {
        runs += 1;
        await tx.$queryRaw`SELECT 1/0`;
      }),
    ).rejects.toThrow();
    expect(runs).toBe(1);
  });
});
