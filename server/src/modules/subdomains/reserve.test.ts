/**
 * Reserving a subdomain: a free name in one statement (most registrations), a taken one the next
 * free `name-2`, `name-3`, … after a look at what is taken, and never a clinic's own name twice.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { countStatements, describeTally } from '../../../test/statements.js';
import { type Transaction, transaction } from '../../db/raw.js';
import { Prisma } from '../../generated/central/client.js';
import { reserveSubdomain } from './allocator.js';

class RolledBack extends Error {}

describe('reserveSubdomain', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { prisma } = t.app.deps.db;
  const database = new URL(t.app.deps.config.databaseUrl ?? '').pathname.slice(1);

  /** `work` in a transaction rolled back at its end, owners' foreign keys not enforced in it. */
  async function rolledBack(work: (tx: Transaction) => Promise<void>): Promise<void> {
    await transaction(prisma, async (tx) => {
      await tx.execute(Prisma.sql`SET LOCAL session_replication_role = replica`);
      await work(tx);
      throw new RolledBack();
    }).catch((error: unknown) => {
      if (!(error instanceof RolledBack)) throw error;
    });
  }
  const forOnboarding = (tx: Transaction, base: string) =>
    reserveSubdomain(tx, base, { onboardingId: randomUUID() });

  it('reserves a free name in one statement, and a taken one as the next free number', async () => {
    const base = `cabinet-${randomBytes(4).toString('hex')}`;
    await rolledBack(async (tx) => {
      const counter = countStatements(database);
      try {
        const first = await counter.count(() => forOnboarding(tx, base));
        expect(first.value).toBe(base);
        expect(first.tally.statements, describeTally(first.tally)).toBe(1);
        const second = await counter.count(() => forOnboarding(tx, base));
        expect(second.value).toBe(`${base}-2`);
        expect(second.tally.statements, describeTally(second.tally)).toBe(3);
      } finally {
        counter.restore();
      }
      expect(await forOnboarding(tx, base)).toBe(`${base}-3`);
    });
  });

  it("skips a name a clinic holds without a reservation (its provisional one), never the clinic's own", async () => {
    const registered = await registerClinic(t, {});
    const clinicId = registered.result?.clinic?.id as string;
    expect(clinicId, JSON.stringify(registered)).toBeTruthy();
    const base = `cabinet-${randomBytes(4).toString('hex')}`;
    await rolledBack(async (tx) => {
      await tx.execute(Prisma.sql`DELETE FROM subdomain_reservations WHERE clinic_id = ${clinicId}::uuid`);
      await tx.execute(Prisma.sql`UPDATE clinics SET subdomain = ${base} WHERE id = ${clinicId}::uuid`);
      expect(await forOnboarding(tx, base)).toBe(`${base}-2`);
      expect(await reserveSubdomain(tx, base, { clinicId })).toBe(base);
    });
  });
});
