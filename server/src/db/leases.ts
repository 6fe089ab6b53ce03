/**
 * Cluster-wide leases in the central database (docs/decisions/050): work that one instance of
 * the cluster should do per period goes to the holder of its lease. The holder renews it each
 * period; another instance takes it only once it has lapsed, so a stopped or killed holder hands
 * the work on after the lease's length, and a live one keeps it (and what it remembers).
 */
import type { CentralPrisma } from './database.js';

type Raw = Pick<CentralPrisma, '$queryRaw' | '$executeRaw'>;

/** Takes or renews the lease `name` for `seconds`. @returns whether `holder` holds it now. */
export async function holdLease(db: Raw, name: string, holder: string, seconds: number): Promise<boolean> {
  // One statement, timed by the database's clock: of instances racing for a lapsed lease one
  // wins, whatever their own clocks say.
  const rows = await db.$queryRaw<{ holder: string }[]>`
    INSERT INTO leases (name, holder, expires_at)
    VALUES (${name}, ${holder}, now() + make_interval(secs => ${seconds}))
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
      WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= now()
    RETURNING holder`;
  return rows.length === 1;
}

/** Gives the lease up (a graceful stop), so another instance takes it at its next try. */
export async function releaseLease(db: Raw, name: string, holder: string): Promise<void> {
  await db.$executeRaw`DELETE FROM leases WHERE name = ${name} AND holder = ${holder}`;
}
