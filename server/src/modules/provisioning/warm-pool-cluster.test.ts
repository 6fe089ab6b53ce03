/**
 * Warm-pool refills coalesce across instances (docs/decisions/071): an instance whose claim finds
 * the server's refill lock taken leaves the refill to the holder instead of queueing a session
 * behind it, and the holder makes good every claim made while it held the lock. Two `WarmPool`s
 * on one server stand for two instances; a spare's inspection waits at a gate the test opens, so
 * a claim lands while the other pool's refill holds the lock, every time.
 */
import { describe, expect, it, vi } from 'vitest';
import { startExtraPostgres, startTestApp } from '../../../test/harness.js';
import { withClient } from '../../db/sql.js';
import { WarmPool } from './warm-pool.js';

const gate = vi.hoisted(() => {
  let opened: Promise<void> = Promise.resolve();
  let release = () => {};
  let waiting = 0;
  return {
    close() {
      opened = new Promise((done) => {
        release = done;
      });
    },
    open() {
      release();
      opened = Promise.resolve();
    },
    async pass() {
      waiting += 1;
      await opened;
      waiting -= 1;
    },
    waiting: () => waiting,
  };
});

vi.mock(import('./integrity.js'), async (importOriginal) => {
  const actual = await importOriginal();
  return {
    ...actual,
    inspectClinicSchema: async (...args: Parameters<typeof actual.inspectClinicSchema>) => {
      await gate.pass();
      return actual.inspectClinicSchema(...args);
    },
  };
});

const server = await startExtraPostgres();

const sql = <T>(query: string, values: unknown[] = []) =>
  withClient(server.url, async (client) => (await client.query(query, values)).rows as T[]);

interface Spare {
  oid: number;
  open: boolean;
  note: string | null;
}
const spares = () =>
  sql<Spare>(
    `SELECT oid::int AS oid, datallowconn AS open, shobj_description(oid, 'pg_database') AS note
       FROM pg_database WHERE datname LIKE 'onramp\\_spare\\_%' ORDER BY oid`,
  );
const claimable = async () =>
  (await spares()).filter((spare) => !spare.open && spare.note === 'onramp:spare:verified');

describe('warm-pool refills across instances', async () => {
  // The app's own pool stays out of this server: only the two pools below make spares there.
  const t = await startTestApp({
    CLINIC_DATABASE_SERVERS: server.url,
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
  });
  const { provisioning, db, logger } = t.app.deps;
  const clinicServer = [...db.servers.byId.values()].find((candidate) => candidate.url === server.url);
  if (!clinicServer) throw new Error('the test server is not among the clinic servers');
  const claim = (pool: WarmPool, target: string) =>
    withClient(server.url, (admin) => pool.claim(admin, clinicServer, target, 'SELECT 1'));

  it('leaves the refill to the holder of the lock, who makes good the claims made meanwhile', async () => {
    const a = new WarmPool(2, logger, provisioning.integrity.shape);
    const b = new WarmPool(2, logger, provisioning.integrity.shape);
    await a.refill(clinicServer);
    expect(await claimable()).toHaveLength(2);
    const before = new Set((await spares()).map((spare) => spare.oid));

    gate.close();
    // Instance a claims; its refill takes the lock, clones one spare and waits in its inspection.
    expect(await claim(a, `clinic_a_${Date.now()}`)).toBe(true);
    await expect.poll(gate.waiting, { timeout: 30_000 }).toBe(1);
    // Instance b claims the last spare; its refill finds the lock taken and returns at once
    // (with the lock waited for, b.idle() would only resolve after the gate opens).
    expect(await claim(b, `clinic_b_${Date.now()}`)).toBe(true);
    await b.idle();
    expect(await claimable()).toHaveLength(0);
    expect((await spares()).filter((spare) => !before.has(spare.oid))).toHaveLength(1);

    gate.open();
    await a.idle();
    // a's first pass counted one spare and made one more; its count after the release saw b's
    // claim and made one again: full, and not one spare beyond.
    expect(await claimable()).toHaveLength(2);
    expect((await spares()).filter((spare) => !before.has(spare.oid))).toHaveLength(2);
    expect(await sql(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory'`)).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });
});
