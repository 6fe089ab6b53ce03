import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { templateName } from '../../db/clinic-template.js';
import { readMigrations, schemaVersion } from '../../db/migrator.js';
import { CLINIC_MIGRATIONS_DIR } from '../../db/paths.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import { ClinicClientCache, type ClinicClientCacheOptions } from './clinic-clients.js';

const admin = inject('pgAdminUrl');
const template = templateName(schemaVersion(readMigrations(CLINIC_MIGRATIONS_DIR)));
/** Clinic ids double as database names; the random part keeps parallel test files apart. */
const run = randomBytes(4).toString('hex');
const clinics = Array.from({ length: 8 }, (_, index) => `cc_${run}_${index}`);

beforeAll(async () => {
  await withClient(admin, async (client) => {
    for (const name of clinics) {
      await client.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
    }
  });
});

afterAll(async () => {
  await withClient(admin, async (client) => {
    for (const name of clinics)
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
});

/**
 * Client backends connected to the given clinic databases (all of them by default). Autovacuum
 * workers also appear in pg_stat_activity under a database's name, so they are left out.
 */
async function backends(names: readonly string[] = clinics): Promise<number> {
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = ANY($1) AND backend_type = 'client backend'`,
      [names],
    );
    return rows[0]!.n;
  });
}

/** A cache whose resolver records the clinics it was asked for; closed after the test. */
function cacheFor(options: Partial<ClinicClientCacheOptions> = {}) {
  const resolved: string[] = [];
  const cache = new ClinicClientCache({
    resolve: async (clinicId) => {
      resolved.push(clinicId);
      return databaseUrl(admin, clinicId);
    },
    ...options,
  });
  onTestFinished(() => cache.close());
  return { cache, resolved };
}

/** Keeps `connections` queries in flight at once, so the client's pool opens that many backends. */
async function useConnections(
  cache: ClinicClientCache,
  clinicId: string,
  connections: number,
  seconds = 0.05,
) {
  const prisma = await cache.get(clinicId);
  await Promise.all(
    Array.from({ length: connections }, () => prisma.$queryRaw`SELECT pg_sleep(${seconds})::text`),
  );
}

describe('ClinicClientCache', () => {
  it('runs queries against the clinic database', async () => {
    const { cache } = cacheFor();
    const prisma = await cache.get(clinics[0]!);
    expect(await prisma.healthcareProvider.count()).toBe(0);
    const [{ db }] = await prisma.$queryRaw<[{ db: string }]>`SELECT current_database() AS db`;
    expect(db).toBe(clinics[0]);
    expect(cache.stats()).toEqual({ size: 1, hits: 0, misses: 1, evictions: 0 });
  });

  it('creates one client for concurrent gets of the same clinic', async () => {
    const { cache, resolved } = cacheFor();
    const clients = await Promise.all(Array.from({ length: 10 }, () => cache.get(clinics[1]!)));
    expect(new Set(clients).size).toBe(1);
    expect(resolved).toEqual([clinics[1]]);
    expect(cache.stats()).toMatchObject({ size: 1, hits: 9, misses: 1 });
  });

  it('does not cache a failed creation', async () => {
    let calls = 0;
    const cache = new ClinicClientCache({
      resolve: async (clinicId) => {
        calls++;
        if (calls === 1) throw new Error('resolver down');
        return databaseUrl(admin, clinicId);
      },
    });
    onTestFinished(() => cache.close());
    const first = Promise.all([cache.get(clinics[2]!), cache.get(clinics[2]!)]);
    await expect(first).rejects.toThrow('resolver down');
    expect(cache.size).toBe(0);
    const prisma = await cache.get(clinics[2]!);
    expect(await prisma.healthcareProvider.count()).toBe(0);
    expect(calls).toBe(2);
  });

  it('never holds more than maxClients clients or maxClients × connectionsPerClient backends', async () => {
    const { cache } = cacheFor({ maxClients: 3, connectionsPerClient: 2 });
    let most = 0;
    for (const clinicId of clinics) {
      await useConnections(cache, clinicId, 3);
      expect(cache.size).toBeLessThanOrEqual(3);
      const open = await backends();
      expect(open).toBeLessThanOrEqual(6);
      most = Math.max(most, open);
    }
    // The bound was reached, so the checks above measured something.
    expect(most).toBe(6);
    expect(cache.stats()).toMatchObject({ size: 3, misses: 8, evictions: 5 });
    // Only the three most recently used clinics still have connections.
    expect(await backends(clinics.slice(5))).toBe(6);
    await cache.close();
    expect(await backends()).toBe(0);
  });

  it('opens a new client only after the evicted one has closed its connections', async () => {
    const { cache } = cacheFor({ maxClients: 1, connectionsPerClient: 2 });
    const [a, b] = [clinics[6]!, clinics[7]!];
    const busy = useConnections(cache, a, 2, 0.5);
    await expect.poll(() => backends([a]), { timeout: 5_000 }).toBe(2);
    // Evicts a while its queries still run; b's first query sees whatever a still holds.
    const prisma = await cache.get(b);
    const [{ n }] = await prisma.$queryRaw<[{ n: number }]>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${a} AND backend_type = 'client backend'`;
    expect(n).toBe(0);
    // Eviction let a's running queries finish rather than cutting them off.
    await expect(busy).resolves.toBeUndefined();
  });

  it('evicts the least recently used client', async () => {
    const { cache, resolved } = cacheFor({ maxClients: 3 });
    const [a, b, c, d] = clinics as [string, string, string, string];
    for (const clinicId of [a, b, c]) await cache.get(clinicId);
    await cache.get(a); // now b is the least recently used
    await cache.get(d);
    resolved.length = 0;
    await cache.get(a);
    await cache.get(c);
    await cache.get(d);
    expect(resolved).toEqual([]); // all three still cached
    await cache.get(b);
    expect(resolved).toEqual([b]); // b had been evicted, a (the next oldest) goes now
    await cache.get(a);
    expect(resolved).toEqual([b, a]);
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 3 });
  });

  it('closes clients that stay idle past idleTimeoutMs', async () => {
    const { cache } = cacheFor({ idleTimeoutMs: 200 });
    const prisma = await cache.get(clinics[3]!);
    await prisma.healthcareProvider.count();
    expect(await backends([clinics[3]!])).toBe(1);
    await expect.poll(() => cache.size, { timeout: 5_000 }).toBe(0);
    expect(cache.stats().evictions).toBe(1);
    await expect.poll(() => backends([clinics[3]!]), { timeout: 5_000 }).toBe(0);
  });

  it('leaves no backends after evict and close, and refuses gets once closed', async () => {
    const { cache } = cacheFor();
    const [a, b] = [clinics[4]!, clinics[5]!];
    await useConnections(cache, a, 2);
    await useConnections(cache, b, 2);
    expect(await backends([a, b])).toBe(4);
    await cache.evict(a);
    expect(await backends([a])).toBe(0);
    expect(await backends([b])).toBe(2);
    expect(cache.size).toBe(1);
    await cache.close();
    expect(await backends([a, b])).toBe(0);
    expect(cache.size).toBe(0);
    await expect(cache.get(a)).rejects.toThrow(/closed/);
  });
});
