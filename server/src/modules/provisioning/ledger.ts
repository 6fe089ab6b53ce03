/**
 * The ledger of clinic databases and roles (docs/decisions/040). Every one Onramp creates is
 * written here first (PENDING, with its run); the run's commit settles it (COMMITTED), its undo
 * drops it through the one door (DROPPED). What a finished run left PENDING is never dropped on
 * sight: the sweep quarantines it — renamed to `onramp_trash_…`, closed to connections, its role
 * NOLOGIN — and the purge drops it once its retention ends. A deleted clinic is kept the same way.
 * Nothing here acts on a database the ledger does not list, nor on a server it cannot reach.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { CentralPrisma, ClinicServer } from '../../db/database.js';
import { dropObjects } from '../../db/drop.js';
import { execute } from '../../db/raw.js';
import { assertSameServer, withServerClient } from '../../db/servers.js';
import { quoteIdent, withPooled } from '../../db/sql.js';
import { ConflictError } from '../../errors.js';
import { Prisma } from '../../generated/central/client.js';
import type { ClinicObjectState } from '../../generated/central/enums.js';
import { addJob, PURGE_JOB, pendingJobKeys, removeJob } from '../../jobs/index.js';
import type { Logger } from '../../logger.js';
import { grantConnect } from './admin.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export const TRASH_PREFIX = 'onramp_trash_';

export interface LedgerObjects {
  serverId: string;
  clinicId: string;
  database: string;
  role: string;
}

/** A ledger entry as reports show it (zombieReport). */
export interface LedgerEntry {
  id: string;
  serverId: string;
  /** The server's name. */
  server: string;
  kind: 'DATABASE' | 'ROLE';
  name: string;
  clinicId: string;
  trashName: string | null;
  reason: string | null;
  purgeAfter: Date | null;
}

export interface LedgerDeps {
  prisma: CentralPrisma;
  logger: Logger;
  servers: ReadonlyMap<string, ClinicServer>;
  names: ReadonlyMap<string, string>;
  trashRetentionSeconds: number;
  /** CLINIC_DELETE_RETENTION, for deleted clinics that had no entries. @default 30 days */
  deleteRetentionSeconds?: number;
}

export class Ledger {
  constructor(private readonly deps: LedgerDeps) {}

  /**
   * Writes the database and role down before they are created. An entry a previous attempt of
   * the same clinic left (hybrid mode) passes to this run; a settled one is left as it is.
   */
  async record(objects: LedgerObjects, runId: string | null, state: 'PENDING' | 'COMMITTED' = 'PENDING') {
    const { prisma } = this.deps;
    const wanted = [
      { kind: 'DATABASE', name: objects.database },
      { kind: 'ROLE', name: objects.role },
    ] as const;
    const settledAt = state === 'COMMITTED' ? new Date() : null;
    // One statement when neither is known yet (every registration's critical path): a conflict
    // means an earlier attempt's entry, looked at below.
    // Through pg beside Prisma's engine (db/raw.ts, decision 070); ON CONFLICT DO NOTHING is
    // what createMany's skipDuplicates sent.
    const inserted = await execute(
      prisma,
      Prisma.sql`
        INSERT INTO clinic_objects (server_id, kind, name, clinic_id, run_id, state, settled_at)
        SELECT ${objects.serverId}::uuid, w.kind::"ClinicObjectKind", w.name, ${objects.clinicId}::uuid,
          ${runId}::uuid, ${state}::"ClinicObjectState", ${settledAt}::timestamptz
        FROM unnest(${wanted.map((object) => object.kind)}::text[], ${wanted.map((object) => object.name)}::text[])
          WITH ORDINALITY AS w(kind, name, n)
        ORDER BY w.n
        ON CONFLICT DO NOTHING`,
    );
    if (inserted === wanted.length) return;
    // What is found now includes what was just inserted, as asked: rewriting it changes nothing.
    const found = await prisma.clinicObject.findMany({
      where: { serverId: objects.serverId, OR: wanted.map((object) => ({ ...object })) },
      select: { kind: true, name: true, state: true },
    });
    const existingOf = (kind: string, name: string) =>
      found.find((entry) => entry.kind === kind && entry.name === name);
    for (const { kind, name } of wanted) {
      const existing = existingOf(kind, name);
      if (existing?.state === 'PENDING' || existing?.state === 'DROPPED') {
        // A PENDING entry keeps its createdAt: this run inherits the object, it did not create it
        // (undoCreated tells the two apart). A DROPPED one is created anew by this run.
        await prisma.clinicObject.update({
          where: { serverId_kind_name: { serverId: objects.serverId, kind, name } },
          data: {
            runId,
            state,
            settledAt,
            ...(existing.state === 'DROPPED' ? { createdAt: new Date(), reason: null } : {}),
          },
        });
      }
    }
  }

  /**
   * The run committed: its clinic's pending objects are the clinic's now. A statement for the
   * commit's transaction (steps/commit.ts), which runs it with the clinic's READY.
   */
  settleSql(clinicId: string): Prisma.Sql {
    return Prisma.sql`
      UPDATE clinic_objects SET state = 'COMMITTED', settled_at = now()
      WHERE clinic_id = ${clinicId}::uuid AND state = 'PENDING'`;
  }

  /**
   * The saga's undo. Drops at once only what this run recorded and created itself while it is
   * still live (strict mode leaves nothing). What it inherited from an earlier attempt (hybrid
   * mode), and everything once the run was taken over as abandoned (its process froze and a
   * reconciler claimed it), is quarantined instead: that is not a live run undoing its own work.
   * Anything the ledger does not attribute to this run is left alone.
   */
  async undoCreated(objects: LedgerObjects, runId: string): Promise<void> {
    const { prisma, logger } = this.deps;
    const server = this.deps.servers.get(objects.serverId);
    if (!server) {
      // create_database found the server answering as another cluster before the ledger named
      // it (decision 086): this run has nothing there to undo.
      const recorded = await prisma.clinicObject.count({
        where: { serverId: objects.serverId, runId, name: { in: [objects.database, objects.role] } },
      });
      if (recorded === 0) return;
      throw new Error('clinic database server unreachable; undo left to the sweep');
    }
    const inherited = await prisma.$transaction(
      async (tx) => {
        // The run's row, locked: a reconciler claiming it waits for this undo to finish, or went
        // first and the run is not live any more: closed, or RUNNING under the reconciler's
        // takeover, which marks it abandoned (reconciler.ts, docs/decisions/058).
        const live = await tx.$queryRaw<{ started_at: Date }[]>`
          SELECT started_at FROM provisioning_runs
           WHERE id = ${runId}::uuid AND status = 'RUNNING'
             AND (error IS NULL OR error NOT LIKE 'abandoned%') FOR UPDATE`;
        const startedAt = live[0]?.started_at;
        const ours = await tx.clinicObject.findMany({
          where: {
            serverId: objects.serverId,
            runId,
            state: 'PENDING',
            name: { in: [objects.database, objects.role] },
          },
          select: { id: true, kind: true, name: true, createdAt: true },
        });
        const own = startedAt ? ours.filter((entry) => entry.createdAt >= startedAt) : [];
        const database = own.find((entry) => entry.kind === 'DATABASE')?.name ?? null;
        const role = own.find((entry) => entry.kind === 'ROLE')?.name ?? null;
        if (database || role) {
          // On a warm admin session: checked to be the identified cluster as it opened (decision
          // 086), so a swap since the create cannot settle as DROPPED what lives on the real one.
          await withPooled(server.admin, (admin) =>
            dropObjects(admin, { database, role }, { kind: 'undo', runId }, logger),
          );
          await tx.clinicObject.updateMany({
            where: { id: { in: own.map((entry) => entry.id) } },
            data: { state: 'DROPPED', settledAt: new Date() },
          });
        }
        return ours.filter((entry) => !own.includes(entry));
      },
      { timeout: 120_000 },
    );
    for (const entry of inherited)
      await this.quarantineEntry(
        entry.id,
        'undone by a run that did not create it or was no longer live',
        this.deps.trashRetentionSeconds,
        ['PENDING'],
      );
  }

  /** Entries of finished runs that did not commit and that nothing will resume: to quarantine. */
  async unsettled(): Promise<LedgerEntry[]> {
    const { prisma } = this.deps;
    const entries = await prisma.clinicObject.findMany({
      where: { state: 'PENDING', OR: [{ runId: null }, { run: { status: { not: 'RUNNING' } } }] },
      orderBy: { createdAt: 'asc' },
    });
    if (entries.length === 0) return [];
    const clinicIds = [...new Set(entries.map((entry) => entry.clinicId))];
    const live = new Set(
      (
        await prisma.provisioningRun.findMany({
          where: { clinicId: { in: clinicIds }, status: 'RUNNING' },
          select: { clinicId: true },
        })
      ).map((run) => run.clinicId),
    );
    const queued = new Set(
      (
        await pendingJobKeys(
          prisma,
          clinicIds.map((id) => `provision:${id}`),
        )
      ).map((key) => key.slice('provision:'.length)),
    );
    const clinics = new Map(
      (
        await prisma.clinic.findMany({
          where: { id: { in: clinicIds } },
          select: { id: true, status: true, databaseName: true, databaseRole: true },
        })
      ).map((clinic) => [clinic.id, clinic]),
    );
    const result: LedgerEntry[] = [];
    for (const entry of entries) {
      if (live.has(entry.clinicId) || queued.has(entry.clinicId)) continue;
      const clinic = clinics.get(entry.clinicId);
      // A crash between the commit and the run's end: the READY clinic's row is the record.
      if (clinic?.status === 'READY' && [clinic.databaseName, clinic.databaseRole].includes(entry.name)) {
        await prisma.clinicObject.update({
          where: { id: entry.id },
          data: { state: 'COMMITTED', settledAt: new Date() },
        });
        continue;
      }
      result.push(this.view(entry));
    }
    return result;
  }

  /** What sits in quarantine, oldest first. */
  async quarantined(): Promise<LedgerEntry[]> {
    const entries = await this.deps.prisma.clinicObject.findMany({
      where: { state: 'QUARANTINED' },
      orderBy: { quarantinedAt: 'asc' },
    });
    return entries.map((entry) => this.view(entry));
  }

  /** Quarantines what `unsettled` lists, on the servers that can be reached. @returns how many. */
  async sweep(): Promise<number> {
    let count = 0;
    for (const entry of await this.unsettled()) {
      if (!this.deps.servers.has(entry.serverId)) continue;
      if (
        await this.quarantineEntry(
          entry.id,
          'left by a run that did not commit',
          this.deps.trashRetentionSeconds,
          ['PENDING'],
          { unlessLive: true },
        )
      )
        count += 1;
    }
    return count;
  }

  /** Quarantines a clinic's committed or pending database and role (a deletion, an expiry). */
  async quarantineClinic(clinicId: string, reason: string, retentionSeconds: number): Promise<number> {
    await this.adoptUnrecorded(clinicId);
    const entries = await this.deps.prisma.clinicObject.findMany({
      where: { clinicId, state: { in: ['PENDING', 'COMMITTED'] } },
      select: { id: true },
    });
    let count = 0;
    for (const entry of entries)
      if (await this.quarantineEntry(entry.id, reason, retentionSeconds, ['PENDING', 'COMMITTED']))
        count += 1;
    // What sat in quarantine already (a sweep's, a shorter retention) is kept at least as long as
    // this quarantine promises: a deleted clinic is restorable for its whole retention.
    const extended = await this.deps.prisma.$executeRaw`
      UPDATE clinic_objects
         SET purge_after = clock_timestamp() + make_interval(secs => ${retentionSeconds}::double precision),
             reason = ${reason}, updated_at = now()
       WHERE clinic_id = ${clinicId}::uuid AND state = 'QUARANTINED'
         AND purge_after < clock_timestamp() + make_interval(secs => ${retentionSeconds}::double precision)`;
    if (extended > 0 && count === 0) await this.schedulePurge();
    return count;
  }

  /**
   * Quarantines a clinic's committed database and role on one server only: the copy a move left
   * behind (modules/moves), while its live copy on the other server stays committed.
   */
  async quarantineOnServer(
    clinicId: string,
    serverId: string,
    reason: string,
    retentionSeconds: number,
  ): Promise<number> {
    const entries = await this.deps.prisma.clinicObject.findMany({
      where: { clinicId, serverId, state: { in: ['PENDING', 'COMMITTED'] } },
      select: { id: true },
    });
    let quarantined = 0;
    for (const entry of entries) {
      if (await this.quarantineEntry(entry.id, reason, retentionSeconds, ['PENDING', 'COMMITTED']))
        quarantined += 1;
    }
    return quarantined;
  }

  /**
   * A clinic whose database and role predate the ledger has no entry for them: its own row names
   * them (clinics.database_name is unique, on its recorded server), which is the record that they
   * are its own — evidence, not a guess. They are written down COMMITTED. Nothing is done when the
   * ledger knows either name already. @returns whether entries were written.
   */
  private async adoptUnrecorded(clinicId: string): Promise<boolean> {
    const { prisma, logger } = this.deps;
    const clinic = await prisma.clinic.findUnique({
      where: { id: clinicId },
      select: { databaseName: true, databaseRole: true, databaseServerId: true },
    });
    if (!clinic) return false;
    const known = await prisma.clinicObject.count({
      where: { serverId: clinic.databaseServerId, name: { in: [clinic.databaseName, clinic.databaseRole] } },
    });
    if (known > 0) return false;
    await this.record(
      {
        serverId: clinic.databaseServerId,
        clinicId,
        database: clinic.databaseName,
        role: clinic.databaseRole,
      },
      null,
      'COMMITTED',
    );
    logger.warn(
      { clinicId, database: clinic.databaseName },
      'clinic database without ledger entries recorded',
    );
    return true;
  }

  /**
   * DELETED clinics the ledger has nothing of (deleted while their database predated the ledger):
   * quarantined now, for what is left of CLINIC_DELETE_RETENTION since the deletion. Only on
   * reachable servers: one that cannot be seen keeps them DELETED until it is back.
   * @returns how many clinics were taken in.
   */
  async adoptDeleted(at?: Date): Promise<number> {
    const { prisma } = this.deps;
    const now = at ?? (await this.now());
    const retention = this.deps.deleteRetentionSeconds ?? 30 * 86_400;
    const deleted = await prisma.clinic.findMany({
      where: { status: 'DELETED', databaseServerId: { in: [...this.deps.servers.keys()] } },
      select: { id: true, updatedAt: true },
    });
    const recorded = new Set(
      (
        await prisma.clinicObject.findMany({
          where: { clinicId: { in: deleted.map((clinic) => clinic.id) } },
          select: { clinicId: true },
        })
      ).map((entry) => entry.clinicId),
    );
    let adopted = 0;
    for (const clinic of deleted.filter((candidate) => !recorded.has(candidate.id))) {
      if (!(await this.adoptUnrecorded(clinic.id))) continue;
      // The deletion's time is the row's last update: a DELETED clinic is not updated again.
      const left = Math.max(0, (clinic.updatedAt.getTime() + retention * 1000 - now.getTime()) / 1000);
      await this.quarantineClinic(clinic.id, 'clinic deleted', left);
      adopted += 1;
    }
    return adopted;
  }

  /** The clinic's database waiting in quarantine, if there is one. */
  async quarantinedDatabase(clinicId: string) {
    return this.deps.prisma.clinicObject.findFirst({
      where: { clinicId, kind: 'DATABASE', state: 'QUARANTINED' },
      orderBy: { quarantinedAt: 'desc' },
    });
  }

  /**
   * Brings a clinic's quarantined database and role back under their own names, open to the role
   * again. @returns whether there was a database to restore.
   */
  async restoreClinic(clinicId: string, options: { refuseDeleted?: boolean } = {}): Promise<boolean> {
    if (!options.refuseDeleted) return this.restoreEntries(clinicId);
    // A repair's restore: under the clinic's row lock, so that a deletion claiming the clinic
    // meanwhile waits and then quarantines what was restored; one that claimed it first wins, and
    // the repair does not bring the database back under a clinic being deleted (decision 040).
    return this.deps.prisma.$transaction(
      async (tx) => {
        const [clinic] = await tx.$queryRaw<{ status: string }[]>`
          SELECT status::text FROM clinics WHERE id = ${clinicId}::uuid FOR UPDATE`;
        if (clinic?.status === 'DELETING' || clinic?.status === 'DELETED')
          throw new ConflictError(`The clinic is ${clinic.status}: restoreClinic brings it back.`);
        return this.restoreEntries(clinicId);
      },
      { timeout: 120_000 },
    );
  }

  private async restoreEntries(clinicId: string): Promise<boolean> {
    const { prisma, logger } = this.deps;
    const entries = await prisma.clinicObject.findMany({ where: { clinicId, state: 'QUARANTINED' } });
    const database = entries.find((entry) => entry.kind === 'DATABASE');
    const role = entries.find((entry) => entry.kind === 'ROLE');
    if (!database) return false;
    const server = this.requireServer(database.serverId);
    // A warm admin session: on the identified cluster (decision 086).
    await withPooled(server.admin, async (admin) => {
      if (role) await admin.query(`ALTER ROLE ${quoteIdent(role.name)} LOGIN`).catch(ignoreMissing);
      const trash = database.trashName ?? database.name;
      if (trash !== database.name && (await exists(admin, trash)))
        await admin.query(`ALTER DATABASE ${quoteIdent(trash)} RENAME TO ${quoteIdent(database.name)}`);
      await admin.query(`ALTER DATABASE ${quoteIdent(database.name)} ALLOW_CONNECTIONS true`);
      if (role) await grantConnect(admin, database.name, role.name);
    });
    await prisma.clinicObject.updateMany({
      where: { id: { in: entries.map((entry) => entry.id) } },
      data: { state: 'COMMITTED', reason: null, trashName: null, quarantinedAt: null, purgeAfter: null },
    });
    logger.warn({ clinicId, database: database.name }, 'clinic database restored from quarantine');
    return true;
  }

  /**
   * The central database's clock, the one every retention is counted on: instances' clocks may
   * disagree, and one running ahead would otherwise purge early what another quarantined.
   */
  async now(db: Pick<CentralPrisma, '$queryRaw'> = this.deps.prisma): Promise<Date> {
    const [row] = await db.$queryRaw<{ now: Date }[]>`SELECT clock_timestamp() AS now`;
    if (!row) throw new Error('the central database answered no time');
    return row.now;
  }

  /**
   * Drops what has been in quarantine past its retention, on reachable servers. @returns the
   * clinic ids whose every object is gone now.
   * @param at the time to purge at (a test's later day); @default the central database's clock
   */
  async purgeDue(at?: Date): Promise<{ purged: number; clinics: string[] }> {
    // One purge at a time in the cluster (the job's queue serialises the job; this covers an
    // operator's or a test's call too): concurrent DROP ROLE / DROP OWNED on one server collide
    // in its shared catalogs. The lock lives in a transaction of its own for the whole pass.
    return this.deps.prisma.$transaction(
      async (lock) => {
        await lock.$executeRaw`SELECT pg_advisory_xact_lock(hashtext('onramp:purge'))`;
        return this.purgeLocked(at ?? (await this.now()));
      },
      { timeout: 30 * 60_000, maxWait: 30 * 60_000 },
    );
  }

  private async purgeLocked(now: Date): Promise<{ purged: number; clinics: string[] }> {
    const { prisma, logger } = this.deps;
    const due = await prisma.clinicObject.findMany({
      where: { state: 'QUARANTINED', purgeAfter: { lte: now } },
      orderBy: { kind: 'asc' }, // databases before their roles
    });
    let purged = 0;
    const clinics = new Set<string>();
    for (const entry of due) {
      const server = this.deps.servers.get(entry.serverId);
      if (!server) continue;
      // DROP … IF EXISTS on another cluster at its address would settle the entry as dropped.
      const same = await assertSameServer(server.admin, server).then(
        () => true,
        (error: unknown) => {
          logger.error({ err: error, server: server.name }, 'purge skipped a server that answers as another');
          return false;
        },
      );
      if (!same) continue;
      // Claimed: of two purges at once (the job and an operator's), one drops each entry.
      const dropped = await prisma.$transaction(
        async (tx) => {
          const claimed = await tx.$queryRaw<{ id: string }[]>`
            SELECT id::text FROM clinic_objects
             WHERE id = ${entry.id}::uuid AND state = 'QUARANTINED' FOR UPDATE SKIP LOCKED`;
          if (claimed.length === 0) return false;
          await dropObjects(
            server.url,
            entry.kind === 'DATABASE' ? { database: entry.trashName ?? entry.name } : { role: entry.name },
            { kind: 'purge', entryId: entry.id },
            logger,
          );
          await tx.clinicObject.update({
            where: { id: entry.id },
            data: { state: 'DROPPED', settledAt: new Date() },
          });
          return true;
        },
        { timeout: 120_000 },
      );
      if (!dropped) continue;
      purged += 1;
      clinics.add(entry.clinicId);
    }
    // DELETED clinics whose database was already gone when the ledger took them in (settled
    // DROPPED at once): their rows go too, once the retention since their deletion is over.
    const retention = this.deps.deleteRetentionSeconds ?? 30 * 86_400;
    const stale = await prisma.clinic.findMany({
      where: { status: 'DELETED', updatedAt: { lte: new Date(now.getTime() - retention * 1000) } },
      select: { id: true },
    });
    if (stale.length > 0) {
      const recorded = await prisma.clinicObject.findMany({
        where: { clinicId: { in: stale.map((clinic) => clinic.id) } },
        select: { clinicId: true },
        distinct: ['clinicId'],
      });
      // Only clinics the ledger knows: one without entries is taken in first (adoptDeleted).
      for (const entry of recorded) clinics.add(entry.clinicId);
    }
    const left = await prisma.clinicObject.findMany({
      where: { clinicId: { in: [...clinics] }, state: { not: 'DROPPED' } },
      select: { clinicId: true },
    });
    const kept = new Set(left.map((entry) => entry.clinicId));
    return { purged, clinics: [...clinics].filter((id) => !kept.has(id)) };
  }

  /**
   * Schedules the purge job for when the first quarantined object's retention ends (one job
   * per cluster: a new schedule replaces the waiting one). Nothing in quarantine, no job.
   */
  async schedulePurge(): Promise<Date | null> {
    const next = await this.nextPurge();
    if (next)
      await addJob(this.deps.prisma, PURGE_JOB, {}, { runAt: next, jobKey: PURGE_JOB, queueName: PURGE_JOB });
    else await removeJob(this.deps.prisma, PURGE_JOB);
    return next;
  }

  /** When the next quarantined object becomes due, if any. */
  async nextPurge(): Promise<Date | null> {
    const next = await this.deps.prisma.clinicObject.findFirst({
      where: { state: 'QUARANTINED' },
      orderBy: { purgeAfter: 'asc' },
      select: { purgeAfter: true },
    });
    return next?.purgeAfter ?? null;
  }

  /**
   * Quarantines one entry if it is still in one of the `from` states. The entry's row stays
   * locked until it is settled, so of several sweeps at once (instances, the periodic pass and a
   * deletion) one does the work and the others find it settled.
   * @returns whether this call quarantined it.
   */
  private async quarantineEntry(
    id: string,
    reason: string,
    retentionSeconds: number,
    from: readonly ClinicObjectState[],
    options: { unlessLive?: boolean } = {},
  ): Promise<boolean> {
    const { prisma, logger } = this.deps;
    const quarantined = await prisma.$transaction(
      async (tx) => {
        await tx.$executeRaw`SELECT 1 FROM clinic_objects WHERE id = ${id}::uuid FOR UPDATE`;
        const entry = await tx.clinicObject.findUniqueOrThrow({ where: { id } });
        if (!from.includes(entry.state)) return false;
        // A run that took the entry over since it was listed (a resumed hybrid attempt) owns it.
        if (options.unlessLive && entry.runId) {
          const run = await tx.provisioningRun.findUnique({
            where: { id: entry.runId },
            select: { status: true },
          });
          if (run?.status === 'RUNNING') return false;
        }
        const server = this.requireServer(entry.serverId);
        let trashName: string | null = null;
        let absent = false;
        // "It did not exist" is only true of the server the entry was made on: the session is
        // checked to be on its cluster as it opens.
        await withServerClient(server, undefined, async (admin) => {
          if (entry.kind === 'ROLE') {
            const role = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [entry.name]);
            if (role.rowCount === 0) {
              absent = true;
              return;
            }
            await admin.query(`ALTER ROLE ${quoteIdent(entry.name)} NOLOGIN`).catch(ignoreMissing);
            await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [
              entry.name,
            ]);
            return;
          }
          // Nothing to keep: never created (a crash before CREATE DATABASE) or an undo got there first.
          if (!(await exists(admin, entry.name))) {
            absent = true;
            return;
          }
          trashName = `${TRASH_PREFIX}${idPart(entry.name)}_${Date.now().toString(36)}`;
          await closeDatabase(admin, entry.name);
          await renameClosed(admin, entry.name, trashName);
          await admin.query(`REVOKE ALL ON DATABASE ${quoteIdent(trashName)} FROM PUBLIC`);
        });
        if (absent) {
          // Settled as gone, not listed as quarantined: there is nothing on the server to restore.
          await tx.clinicObject.update({
            where: { id },
            data: { state: 'DROPPED', reason: `${reason}; it did not exist`, settledAt: new Date() },
          });
          return false;
        }
        const quarantinedAt = await this.now(tx);
        await tx.clinicObject.update({
          where: { id },
          data: {
            state: 'QUARANTINED',
            reason,
            trashName,
            quarantinedAt,
            purgeAfter: new Date(quarantinedAt.getTime() + retentionSeconds * 1000),
          },
        });
        logger.warn(
          { kind: entry.kind, name: entry.name, trashName, reason, server: server.name },
          'clinic object quarantined',
        );
        return true;
      },
      { timeout: 120_000 },
    );
    if (quarantined) await this.schedulePurge();
    return quarantined;
  }

  private requireServer(serverId: string): ClinicServer {
    const server = this.deps.servers.get(serverId);
    if (!server)
      throw new Error(`database server ${this.deps.names.get(serverId) ?? serverId} is unreachable`);
    return server;
  }

  private view(entry: {
    id: string;
    serverId: string;
    kind: 'DATABASE' | 'ROLE';
    name: string;
    clinicId: string;
    trashName: string | null;
    reason: string | null;
    purgeAfter: Date | null;
  }): LedgerEntry {
    return {
      id: entry.id,
      serverId: entry.serverId,
      server: this.deps.names.get(entry.serverId) ?? entry.serverId,
      kind: entry.kind,
      name: entry.name,
      clinicId: entry.clinicId,
      trashName: entry.trashName,
      reason: entry.reason,
      purgeAfter: entry.purgeAfter,
    };
  }
}

async function exists(admin: Queryable, name: string): Promise<boolean> {
  const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  return (rowCount ?? 0) > 0;
}

/** No new connections, and the open ones ended: a database can only be renamed unused. */
async function closeDatabase(admin: Queryable, name: string): Promise<void> {
  await admin.query(`ALTER DATABASE ${quoteIdent(name)} ALLOW_CONNECTIONS false`);
  await admin.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [name],
  );
}

async function renameClosed(admin: Queryable, from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`ALTER DATABASE ${quoteIdent(from)} RENAME TO ${quoteIdent(to)}`);
      return;
    } catch (error) {
      // 55006: a terminated session has not quite gone yet.
      if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
      await new Promise((done) => setTimeout(done, 100));
      await closeDatabase(admin, from);
    }
  }
}

function idPart(name: string): string {
  return /_([0-9a-f]{16})$/.exec(name)?.[1] ?? randomBytes(8).toString('hex');
}

function ignoreMissing(error: unknown): void {
  if ((error as { code?: string }).code !== '42704') throw error; // undefined_object
}
