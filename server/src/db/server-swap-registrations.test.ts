/**
 * Registrations while another PostgreSQL answers at a clinic server's URL (server-swap.test.ts
 * covers health, repair and deletion; decision 086 this): a new clinic placed there would be lost
 * when the real server returns. Nothing lands on the impostor — no database, no role, no spare, no
 * ledger entry naming the server — every registration ends READY on the other server, or fails
 * with a typed error and nothing half-made when no identified server is left; the real server,
 * back at its address, is used again.
 */
import { describe, expect, it } from 'vitest';
import {
  afterFile,
  overTcp,
  startExtraPostgres,
  startTestApp,
  type TestApp,
  tempDir,
  testLogger,
} from '../../test/harness.js';
import { createClinic, RegistrationRefused } from '../../test/registration-flow.js';
import { impostorDir, inventory, serverOf } from '../../test/swap.js';
import { startEmbeddedPostgres } from './embedded.js';
import { serverAddress } from './servers.js';

const logger = testLogger({ env: 'test', logLevel: 'error' });

/** A clinic server that can be swapped for another cluster on the same port, and back. */
async function swappable() {
  const dir = tempDir('onramp-swapguard-a-');
  let running = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
  afterFile(() => running.stop());
  const url = overTcp(running.url);
  return {
    url,
    /** The recorded server stopped, a fresh cluster (same port, same password) in its place. */
    async swap() {
      await running.stop();
      running = await startEmbeddedPostgres({
        dir: impostorDir(dir, 'onramp-swapguard-b-'),
        logger,
        ephemeral: true,
      });
      expect(overTcp(running.url)).toBe(url);
    },
    async back() {
      await running.stop();
      running = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    },
  };
}

function serverId(t: TestApp, url: string): string {
  const server = t.app.deps.db.clinicServers.find((s) => s.address === serverAddress(url));
  if (!server) throw new Error(`no server at ${url}`);
  return server.id;
}

describe.each(['0', '2'])(
  'registrations with a swapped clinic server (CLINIC_POOL_SIZE=%s)',
  async (poolSize) => {
    const swapped = await swappable();
    const other = await startExtraPostgres();
    const t = await startTestApp({
      CLINIC_POOL_SIZE: poolSize,
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
      CLINIC_DATABASE_SERVERS: `${swapped.url},${other.url}`,
    });
    const { provisioning, db } = t.app.deps;
    const swappedId = serverId(t, swapped.url);
    const otherId = serverId(t, other.url);

    it('lands nothing on the impostor, ends every registration READY on the other server, and uses the real one once back', async () => {
      // One clinic on each: the burst's placements then all choose the swapped server (first listed).
      const first = await createClinic(t, { clinicName: 'Before One' });
      const second = await createClinic(t, { clinicName: 'Before Two' });
      expect([await serverOf(t, first.clinicId), await serverOf(t, second.clinicId)]).toEqual([
        swappedId,
        otherId,
      ]);
      await provisioning.pool.idle();
      const entriesBefore = await db.prisma.clinicObject.count({ where: { serverId: swappedId } });

      await swapped.swap();
      const before = await inventory(swapped.url);
      const burst = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => createClinic(t, { clinicName: `Burst ${i}` })),
      );
      expect(
        burst.map((result) => (result.status === 'fulfilled' ? 'READY' : String(result.reason))),
      ).toEqual(Array(6).fill('READY'));
      const clinics = burst.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      for (const { clinicId } of clinics) expect(await serverOf(t, clinicId)).toBe(otherId);
      await provisioning.pool.idle();
      // The warm pool made no spare there and the registrations claimed none.
      const stale = db.clinicServers.find((s) => s.id === swappedId);
      if (stale) provisioning.pool.refillInBackground(stale);
      await provisioning.pool.idle();
      expect(await inventory(swapped.url)).toEqual(before);
      expect(await db.prisma.clinicObject.count({ where: { serverId: swappedId } })).toBe(entriesBefore);
      expect(
        await db.prisma.clinicObject.count({
          where: { serverId: swappedId, clinicId: { in: clinics.map((c) => c.clinicId) } },
        }),
      ).toBe(0);
      // Marked: out of placement here, not identified in the registry and in the central record.
      expect(db.servers.byId.has(swappedId)).toBe(false);
      expect(db.servers.unreachable.get(swappedId)).toMatchObject({
        identityMismatch: true,
        reason: expect.stringMatching(/answers as another server/),
      });
      expect(await db.prisma.databaseServer.findUniqueOrThrow({ where: { id: swappedId } })).toMatchObject({
        reachable: false,
        lastError: expect.stringMatching(/answers as another server/),
      });
      // Still another server at the address: a refresh does not take it back, nor record it as new.
      await db.servers.refresh();
      expect(db.servers.byId.has(swappedId)).toBe(false);
      expect(await db.prisma.databaseServer.count()).toBe(2);
      expect(await inventory(swapped.url)).toEqual(before);

      // The recorded server back at its address: used again, its clinics intact.
      await swapped.back();
      await db.servers.refresh();
      expect(db.servers.byId.has(swappedId)).toBe(true);
      expect(db.servers.unreachable.has(swappedId)).toBe(false);
      expect(await db.prisma.databaseServer.findUniqueOrThrow({ where: { id: swappedId } })).toMatchObject({
        reachable: true,
      });
      expect((await provisioning.checkClinic(first.clinicId)).dbStatus).toBe('HEALTHY');
      const after = await createClinic(t, { clinicName: 'After' });
      expect(await serverOf(t, after.clinicId)).toBe(swappedId);
      expect((await provisioning.checkClinic(after.clinicId)).dbStatus).toBe('HEALTHY');
    }, 240_000);
  },
);

describe('registrations when the only clinic server is swapped', async () => {
  const swapped = await swappable();
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '1',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    CLINIC_DATABASE_SERVERS: swapped.url,
  });
  const { provisioning, db } = t.app.deps;

  it('fail with a typed error and leave nothing: no clinic, no ledger entry, nothing on the impostor', async () => {
    await createClinic(t, { clinicName: 'Before' });
    await provisioning.pool.idle();
    const clinicsBefore = await db.prisma.clinic.count();
    const entriesBefore = await db.prisma.clinicObject.count();
    await swapped.swap();
    const before = await inventory(swapped.url);
    const burst = await Promise.allSettled(
      Array.from({ length: 3 }, (_, i) => createClinic(t, { clinicName: `Nowhere ${i}` })),
    );
    // One more once the server is known to answer as another: refused at placement, before any
    // run would exist (in a burst, a registration placed after the first one found out).
    const later = await Promise.allSettled([createClinic(t, { clinicName: 'Nowhere later' })]);
    for (const result of [...burst, ...later]) {
      expect(result.status).toBe('rejected');
      const refused = (result as PromiseRejectedResult).reason;
      expect(refused).toBeInstanceOf(RegistrationRefused);
      expect(refused).toMatchObject({ typename: 'ProvisioningFailedError', code: 'PROVISIONING_FAILED' });
      expect((refused as RegistrationRefused).answer.result?.message).toMatch(
        /no identified clinic database server/i,
      );
    }
    await provisioning.pool.idle();
    expect(await inventory(swapped.url)).toEqual(before);
    // Rolled back whole: the clinics (central_records' undo) and no ledger entry at all.
    expect(await db.prisma.clinic.count()).toBe(clinicsBefore);
    expect(await db.prisma.clinicObject.count()).toBe(entriesBefore);
  }, 180_000);
});
