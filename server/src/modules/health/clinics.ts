/**
 * Clinic database health in two tiers (docs/decisions/051):
 * - the shallow sweep, every CLINIC_HEALTH_INTERVAL_SECONDS: one catalog query per clinic server
 *   (catalog.ts) for every clinic at once — a dropped database is MISSING within one period;
 * - deep checks (a connection as the clinic role: tables, grants, schema version), a few per
 *   sweep, oldest-checked first, so that every clinic gets one within CLINIC_DEEP_CHECK_PERIOD;
 *   at once when the shallow sweep sees a clinic change; and on demand (sign-in, repair, the
 *   `health` field of a clinic).
 * What they find is recorded in `clinic_health`; clinicsHealth counts and pages from there, and
 * a recorded status that changes is published (`clinicHealthChanged`) once, by whoever changed it.
 * One instance of the cluster sweeps per period: the holder of the lease (decision 050).
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { mapLimit } from '../../concurrency.js';
import type { CentralPrisma } from '../../db/database.js';
import { holdLease, releaseLease } from '../../db/leases.js';
import type { Logger } from '../../logger.js';
import type { Metrics } from '../../metrics.js';
import {
  CLINIC_RECORD_COLUMNS,
  type ClinicHealth,
  type ClinicRecord,
  checkClinicDatabaseIntegrity,
  type DbStatus,
  type IntegrityContext,
} from '../provisioning/index.js';
import { COMPARE_WITH_CATALOG, describeVerdict, readCatalogLists, type ShallowVerdict } from './catalog.js';

const SWEEP_LEASE = 'clinic_health_sweep';
export const DB_STATUSES: readonly DbStatus[] = [
  'HEALTHY',
  'DEGRADED',
  'UNHEALTHY',
  'MISSING',
  'PROVISIONING',
];

export interface ClinicsHealthReport {
  checkedAt: Date;
  total: number;
  healthy: number;
  unhealthy: number;
  clinics: ClinicHealth[];
}

/** Counts of the recorded health, without the list (clinicsHealth's summary). */
export interface ClinicsHealthSummary {
  /** When the last shallow sweep read a server's catalog (now, before any sweep). */
  checkedAt: Date;
  total: number;
  healthy: number;
  unhealthy: number;
  byStatus: { status: DbStatus; count: number }[];
}

export interface HealthPageFilter {
  status?: DbStatus | null;
  /** A server's name (as ClinicHealth.server shows it). */
  server?: string | null;
  /** Part of the clinic's name or subdomain, any case. */
  search?: string | null;
}

export interface HealthMonitorDeps {
  prisma: CentralPrisma;
  /** Raw connections to the central database (owner): the sweep's one big read goes through it. */
  pool: pg.Pool;
  logger: Logger;
  metrics: Metrics;
  integrity: IntegrityContext;
  /** Most deep checks (connections) at once. */
  concurrency: number;
  /** Seconds between shallow sweeps; 0: no background work. */
  intervalSeconds: number;
  /** Every clinic gets a deep check within this many seconds. */
  deepPeriodSeconds: number;
  /** Tries again the servers that did not answer. */
  refreshServers(): Promise<void>;
  publish(health: ClinicHealth): void;
  /** A clinic's database is newly MISSING: report it (alerts), never recreate it. */
  onMissing(health: ClinicHealth): Promise<void>;
}

interface Verdict {
  verdict: ShallowVerdict;
  dbStatus: DbStatus;
  errors: string[];
}

/** One finding to record: the health, what the catalog said, and whether it was a deep check. */
interface Finding {
  health: ClinicHealth;
  shallow: ShallowVerdict;
  deep: boolean;
}

export class ClinicHealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  /** Sweeps and full checks, one at a time, so the connection bound holds overall. */
  private chain: Promise<unknown> = Promise.resolve();
  private ticking = false;
  private readonly instanceId = randomUUID();

  constructor(private readonly deps: HealthMonitorDeps) {}

  start(): void {
    const seconds = this.deps.intervalSeconds;
    if (seconds <= 0) return;
    this.timer = setInterval(() => {
      this.tick().catch((error: unknown) => this.deps.logger.warn({ err: error }, 'health sweep failed'));
    }, seconds * 1000);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.chain.catch(() => undefined);
    await releaseLease(this.deps.prisma, SWEEP_LEASE, this.instanceId).catch((error: unknown) =>
      this.deps.logger.warn({ err: error }, 'health sweep lease not released'),
    );
  }

  /**
   * One background period, on the lease's holder only (decision 050): the shallow sweep, then
   * this period's share of deep checks. A tick that finds the previous one running skips.
   */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const seconds = this.deps.intervalSeconds;
      if (!(await holdLease(this.deps.prisma, SWEEP_LEASE, this.instanceId, 3 * seconds))) return;
      this.deps.metrics.healthSweeps.inc();
      await this.serially(async () => {
        const { present, urgent } = await this.shallowSweep();
        await this.deepChecks(urgent, Math.ceil((present * seconds) / this.deps.deepPeriodSeconds));
      });
    } finally {
      this.ticking = false;
    }
  }

  /**
   * Reads every server's catalog once and records what changed.
   * @returns how many clinics' databases are there to check deeply, and those the sweep saw
   *   change (or never checked), to check deeply at once.
   */
  async shallowSweep(): Promise<{ present: number; urgent: string[] }> {
    await this.deps.refreshServers();
    const { present, found } = await this.verdicts(false);
    const changed = new Map<string, Verdict>();
    const urgent: string[] = [];
    for (const [id, verdict] of found) {
      if (verdict.verdict === 'PRESENT') urgent.push(id);
      else changed.set(id, verdict);
    }
    if (changed.size > 0) {
      const named = await this.deps.prisma.clinic.findMany({
        where: { id: { in: [...changed.keys()] } },
        select: CLINIC_RECORD_COLUMNS,
      });
      await this.record(
        named.map((clinic) => this.shallowFinding(clinic, changed.get(clinic.id) as Verdict)),
      );
    }
    return { present, urgent };
  }

  /**
   * Deep-checks `urgent` and then the `budget` clinics whose last deep check is oldest (and older
   * than half the deep period), at most `concurrency` at a time, and records what they found.
   */
  private async deepChecks(urgent: string[], budget: number): Promise<void> {
    const halfPeriod = Math.max(1, Math.floor(this.deps.deepPeriodSeconds / 2));
    const due =
      budget > 0
        ? await this.deps.prisma.$queryRaw<{ id: string }[]>`
            SELECT h.clinic_id AS id FROM clinic_health h
             WHERE h.shallow = 'PRESENT'
               AND (h.deep_checked_at IS NULL OR h.deep_checked_at < now() - make_interval(secs => ${halfPeriod}))
             ORDER BY h.deep_checked_at ASC NULLS FIRST
             LIMIT ${budget}`
        : [];
    const ids = [...new Set([...urgent, ...due.map((row) => row.id)])];
    if (ids.length === 0) return;
    const clinics = await this.deps.prisma.clinic.findMany({
      where: { id: { in: ids } },
      select: CLINIC_RECORD_COLUMNS,
    });
    const findings = await mapLimit(clinics, this.deps.concurrency, (clinic) =>
      this.deepFinding(clinic, true),
    );
    await this.record(findings);
  }

  /**
   * Checks one clinic now, deeply (on demand: sign-in, repair, a clinic's `health`), records it
   * and publishes a change. Never throws for what it finds: a status says it.
   */
  async checkClinic(clinic: ClinicRecord): Promise<ClinicHealth> {
    const finding = await this.deepFinding(clinic);
    await this.record([finding]);
    return finding.health;
  }

  /**
   * Checks every clinic now, both tiers (the operator's full check: the REST health route, the
   * zombie report): the clinics, oldest first, with counts.
   */
  checkAll(): Promise<ClinicsHealthReport> {
    return this.serially(async () => {
      await this.deps.refreshServers();
      const clinics = await this.deps.prisma.clinic.findMany({
        select: CLINIC_RECORD_COLUMNS,
        orderBy: { createdAt: 'asc' },
      });
      const { found: verdicts } = await this.verdicts(true);
      const findings = await mapLimit(clinics, this.deps.concurrency, (clinic) => {
        const found = verdicts.get(clinic.id);
        // A clinic registered since the comparison: its deep check looks for its database itself.
        if (!found) return this.deepFinding(clinic);
        return found.verdict === 'PRESENT'
          ? this.deepFinding(clinic, true)
          : Promise.resolve(this.shallowFinding(clinic, found));
      });
      await this.record(findings, { reportMissing: 'all' });
      const results = findings.map((finding) => finding.health);
      const healthy = results.filter((health) => health.dbStatus === 'HEALTHY').length;
      const provisioning = results.filter((health) => health.dbStatus === 'PROVISIONING').length;
      return {
        checkedAt: new Date(),
        total: results.length,
        healthy,
        unhealthy: results.length - healthy - provisioning,
        clinics: results,
      };
    });
  }

  /**
   * Records a status found elsewhere (e.g. a failed upgrade leaving a clinic DEGRADED, with its
   * error) and publishes it if it changed. The next deep check of the clinic replaces it.
   */
  async recordStatus(health: ClinicHealth): Promise<void> {
    await this.record([{ health, shallow: 'PRESENT', deep: false }]);
  }

  /** Counts of the recorded health, by status (clinics never checked are checked first). */
  async summary(): Promise<ClinicsHealthSummary> {
    await this.checkUnrecorded();
    const rows = await this.deps.prisma.$queryRaw<{ status: DbStatus; count: number }[]>`
      SELECT h.db_status AS status, count(*)::int AS count FROM clinic_health h GROUP BY h.db_status`;
    const [sweep] = await this.deps.prisma.$queryRaw<{ at: Date | null }[]>`
      SELECT max(swept_at) AS at FROM health_sweeps`;
    const count = (status: DbStatus) => rows.find((row) => row.status === status)?.count ?? 0;
    const total = rows.reduce((sum, row) => sum + row.count, 0);
    return {
      checkedAt: sweep?.at ?? new Date(),
      total,
      healthy: count('HEALTHY'),
      unhealthy: total - count('HEALTHY') - count('PROVISIONING'),
      byStatus: DB_STATUSES.map((status) => ({ status, count: count(status) })),
    };
  }

  /**
   * A page of the recorded health, oldest clinic first, after the clinic `after` (keyset on
   * creation time and id).
   */
  async page(filter: HealthPageFilter, limit: number, after?: string): Promise<ClinicHealth[]> {
    await this.checkUnrecorded();
    const serverIds = filter.server
      ? [...this.deps.integrity.names].filter(([, name]) => name === filter.server).map(([id]) => id)
      : null;
    const search = filter.search ? `%${filter.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
    const rows = await this.deps.prisma.$queryRaw<RecordedRow[]>`
      SELECT c.id, c.name, c.subdomain, c.database_server_id AS "serverId", h.db_status AS "dbStatus",
             h.tables_count AS "tablesCount", h.missing_tables AS "missingTables",
             h.schema_version AS "schemaVersion", h.errors, h.checked_at AS "checkedAt"
        FROM clinics c JOIN clinic_health h ON h.clinic_id = c.id
       WHERE (${filter.status ?? null}::text IS NULL OR h.db_status = ${filter.status ?? null})
         AND (${serverIds}::uuid[] IS NULL OR c.database_server_id = ANY(${serverIds}::uuid[]))
         AND (${search}::text IS NULL OR c.name ILIKE ${search} OR c.subdomain ILIKE ${search})
         AND (${after ?? null}::uuid IS NULL OR (c.created_at, c.id) >
              (SELECT created_at, id FROM clinics WHERE id = ${after ?? null}::uuid))
       ORDER BY c.created_at, c.id
       LIMIT ${limit}`;
    return rows.map((row) => this.fromRecord(row));
  }

  /** Every recorded clinic (clinicsHealth's unpaginated `clinics`: one row per clinic). */
  async recorded(): Promise<ClinicHealth[]> {
    return this.page({}, 1_000_000);
  }

  /** Ids of the clinics whose recorded status is `status`. */
  async idsWithStatus(status: DbStatus): Promise<string[]> {
    await this.checkUnrecorded();
    const rows = await this.deps.prisma.clinicHealthRecord.findMany({
      where: { dbStatus: status },
      select: { clinicId: true },
    });
    return rows.map((row) => row.clinicId);
  }

  /** Deep-checks the clinics with no recorded health yet, or recorded while being provisioned. */
  private async checkUnrecorded(): Promise<void> {
    const stale = await this.deps.prisma.$queryRaw<{ id: string }[]>`
      SELECT c.id FROM clinics c LEFT JOIN clinic_health h ON h.clinic_id = c.id
       WHERE h.clinic_id IS NULL
          OR (h.db_status = 'PROVISIONING' AND c.status::text NOT IN ('PROVISIONING', 'PENDING', 'DELETING'))`;
    if (stale.length === 0) return;
    const clinics = await this.deps.prisma.clinic.findMany({
      where: { id: { in: stale.map((row) => row.id) } },
      select: CLINIC_RECORD_COLUMNS,
    });
    await this.record(await mapLimit(clinics, this.deps.concurrency, (clinic) => this.deepFinding(clinic)));
  }

  private serially<T>(work: () => Promise<T>): Promise<T> {
    // A caller arriving during a sweep gets the next one, which sees everything before its call.
    const next = this.chain.catch(() => undefined).then(work);
    this.chain = next;
    return next;
  }

  /**
   * The shallow verdicts: per recorded server one catalog query, compared on the central database
   * with its clinics. `all` false: only the clinics whose verdict or status differs from the
   * record (a steady sweep gets none back).
   */
  private async verdicts(all: boolean): Promise<{ present: number; found: Map<string, Verdict> }> {
    const { integrity, pool } = this.deps;
    const found = new Map<string, Verdict>();
    const swept: { id: string; clinics: number }[] = [];
    let present = 0;
    for (const serverId of integrity.names.keys()) {
      const server = integrity.servers.get(serverId);
      const name = integrity.names.get(serverId) ?? serverId;
      let unreachable = `database server ${name} is unreachable: ${integrity.unreachable.get(serverId)?.reason ?? 'not configured'}`;
      const catalog = server
        ? await readCatalogLists(server).catch((error: Error) => {
            unreachable = `database server unreachable: ${error.message}`;
            return null;
          })
        : null;
      const { rows } = await pool.query<{
        clinics: number;
        present: number;
        found: { id: string; role: string; verdict: string }[];
      }>(COMPARE_WITH_CATALOG, [
        serverId,
        catalog?.databases ?? [],
        catalog?.allowsConnections ?? [],
        catalog?.roles ?? [],
        catalog?.canLogin ?? [],
        catalog !== null,
        all,
      ]);
      const row = rows[0];
      if (!row) continue;
      present += row.present;
      if (catalog) swept.push({ id: serverId, clinics: row.clinics });
      for (const clinic of row.found)
        found.set(clinic.id, describeVerdict(clinic.verdict, clinic.role, unreachable));
    }
    if (swept.length > 0)
      await pool.query(
        `INSERT INTO health_sweeps (server_id, swept_at, clinics)
         SELECT unnest($1::uuid[]), now(), unnest($2::int[])
         ON CONFLICT (server_id) DO UPDATE SET swept_at = EXCLUDED.swept_at, clinics = EXCLUDED.clinics`,
        [swept.map((server) => server.id), swept.map((server) => server.clinics)],
      );
    return { present, found };
  }

  /** The health a verdict other than PRESENT stands for. */
  private shallowFinding(clinic: ClinicRecord, found: Verdict): Finding {
    return {
      health: {
        ...this.blank(clinic),
        dbStatus: found.dbStatus,
        errors: found.errors,
        missingTables: found.verdict === 'MISSING' ? this.deps.integrity.shape.tables : [],
      },
      shallow: found.verdict,
      deep: false,
    };
  }

  private async deepFinding(clinic: ClinicRecord, exists?: boolean): Promise<Finding> {
    const health = await checkClinicDatabaseIntegrity(clinic, this.deps.integrity, exists);
    const shallow: ShallowVerdict =
      health.dbStatus === 'MISSING'
        ? 'MISSING'
        : health.dbStatus === 'PROVISIONING'
          ? 'PROVISIONING'
          : health.serverReachable
            ? 'PRESENT'
            : 'UNREACHABLE';
    return { health, shallow, deep: shallow === 'PRESENT' };
  }

  /**
   * Writes findings in one statement and publishes each whose recorded status changed (a clinic
   * seen for the first time is not a change). Newly MISSING databases are reported.
   */
  private async record(findings: Finding[], options: { reportMissing?: 'new' | 'all' } = {}): Promise<void> {
    if (findings.length === 0) return;
    const rows = findings.map(({ health, shallow, deep }) => ({
      clinic_id: health.clinicId,
      db_status: health.dbStatus,
      shallow,
      tables_count: health.tablesCount,
      missing_tables: health.missingTables,
      schema_version: health.schemaVersion,
      errors: health.errors,
      checked_at: health.lastCheck.toISOString(),
      deep,
    }));
    const written = await this.deps.prisma.$queryRaw<{ id: string; previous: string | null }[]>`
      WITH input AS (
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(
          clinic_id uuid, db_status text, shallow text, tables_count int, missing_tables jsonb,
          schema_version text, errors jsonb, checked_at timestamptz, deep boolean)
      ), previous AS (
        SELECT h.clinic_id, h.db_status FROM clinic_health h JOIN input i USING (clinic_id)
      ), written AS (
        INSERT INTO clinic_health AS h (clinic_id, db_status, shallow, tables_count, missing_tables,
                                        schema_version, errors, checked_at, deep_checked_at)
        SELECT i.clinic_id, i.db_status, i.shallow, i.tables_count,
               ARRAY(SELECT jsonb_array_elements_text(i.missing_tables)), i.schema_version,
               ARRAY(SELECT jsonb_array_elements_text(i.errors)), i.checked_at,
               CASE WHEN i.deep THEN i.checked_at END
          FROM input i
         -- A clinic purged meanwhile has nothing left to record.
         WHERE EXISTS (SELECT 1 FROM clinics c WHERE c.id = i.clinic_id)
        ON CONFLICT (clinic_id) DO UPDATE SET
          db_status = EXCLUDED.db_status, shallow = EXCLUDED.shallow,
          tables_count = EXCLUDED.tables_count, missing_tables = EXCLUDED.missing_tables,
          schema_version = EXCLUDED.schema_version, errors = EXCLUDED.errors,
          checked_at = EXCLUDED.checked_at,
          deep_checked_at = coalesce(EXCLUDED.deep_checked_at, h.deep_checked_at)
        RETURNING h.clinic_id
      )
      SELECT w.clinic_id::text AS id, p.db_status AS previous
        FROM written w LEFT JOIN previous p USING (clinic_id)`;
    const previous = new Map(written.map((row) => [row.id, row.previous]));
    for (const { health } of findings) {
      if (!previous.has(health.clinicId)) continue;
      const before = previous.get(health.clinicId) ?? null;
      const changed = before !== null && before !== health.dbStatus;
      if (changed) this.deps.publish(health);
      const missing = health.dbStatus === 'MISSING';
      if (missing && (options.reportMissing === 'all' || before !== 'MISSING'))
        await this.deps
          .onMissing(health)
          .catch((error: unknown) =>
            this.deps.logger.warn({ err: error, clinicId: health.clinicId }, 'missing database alert failed'),
          );
    }
  }

  private blank(clinic: Pick<ClinicRecord, 'id' | 'name' | 'subdomain' | 'databaseServerId'>): ClinicHealth {
    const { integrity } = this.deps;
    return {
      clinicId: clinic.id,
      name: clinic.name,
      server: integrity.names.get(clinic.databaseServerId) ?? clinic.databaseServerId,
      serverReachable: integrity.servers.has(clinic.databaseServerId),
      subdomain: clinic.subdomain,
      dbStatus: 'HEALTHY',
      tablesCount: 0,
      expectedTables: integrity.shape.tables.length,
      missingTables: [],
      schemaVersion: null,
      errors: [],
      lastCheck: new Date(),
    };
  }

  private fromRecord(row: RecordedRow): ClinicHealth {
    return {
      ...this.blank({ id: row.id, name: row.name, subdomain: row.subdomain, databaseServerId: row.serverId }),
      dbStatus: row.dbStatus,
      tablesCount: row.tablesCount,
      missingTables: row.missingTables,
      schemaVersion: row.schemaVersion,
      errors: row.errors,
      lastCheck: row.checkedAt,
    };
  }
}

interface RecordedRow {
  id: string;
  name: string;
  subdomain: string;
  serverId: string;
  dbStatus: DbStatus;
  tablesCount: number;
  missingTables: string[];
  schemaVersion: string | null;
  errors: string[];
  checkedAt: Date;
}
