/**
 * A warm pool of spare clinic databases, cloned from the current template, so a registration's
 * database is a rename and grants instead of a copy and a full check (docs/decisions/055). A
 * spare is born closed to connections (`CREATE DATABASE … ALLOW_CONNECTIONS false`) from the
 * closed template, which was inspected as the clinic group role when it was built, and is then
 * commented `onramp:spare:verified`: a block copy of an inspected database that no session has
 * reached since, so inspecting it again would read the same catalog rows over a new session
 * (decision 093). Nothing can change a closed spare without reopening it, and a reopened one is
 * never handed out. Spares are named by template version; a new version simply stops matching
 * old spares, which `refill` drops.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { ClinicServer } from '../../db/database.js';
import { dropObjects, SPARE_PREFIX } from '../../db/drop.js';
import { quoteIdent, withPooled } from '../../db/sql.js';
import type { Logger } from '../../logger.js';
import { cloneDatabase, quoteLiteral } from './admin.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export { SPARE_PREFIX };

/** The comment of a spare born closed from the inspected template: claimable. */
const VERIFIED = 'onramp:spare:verified';
/** The comment of a claimed spare that failed the check after its claim, followed by why: kept for the operator, never claimed. */
const REJECTED = 'onramp:spare:rejected: ';
/**
 * SQLSTATE a claim raises when the database it just renamed is no longer a closed, verified
 * spare (a custom code: nothing else in the claim's message raises it).
 */
const STALE_SPARE = 'OS001';
/** Advisory lock, on each clinic server, of the one refill running there. */
const REFILL_LOCK = 'onramp:warm-pool:refill';

interface SpareRow {
  datname: string;
  /** datallowconn: a verified spare is closed; an open one was reopened since. */
  open: boolean;
  note: string | null;
}

export class WarmPool {
  private filling = new Map<string, Promise<void>>();
  /** Per server, the verified spares the last refill counted or made (hints, see `claim`). */
  private verifiedNames = new Map<string, Set<string>>();
  /** Servers claimed from inside {@link deferRefills}, refilled when that work settles. */
  private readonly deferring = new AsyncLocalStorage<Set<ClinicServer>>();
  private again = new Set<string>();
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly logger: Logger,
  ) {}

  private prefix(server: ClinicServer): string {
    return `${SPARE_PREFIX}${server.template.version.replaceAll('-', '_')}_`;
  }

  /**
   * Renames a verified spare to `target` and opens it to connections, between `before` (SQL: the
   * clinic role, `clinicRoleSql`) and `then` (the caller's grants, `clinicDatabaseGrants`), all in
   * one message: one round trip and one implicit transaction, so a claim is all done or not at
   * all, and an error in `before` or `then` (a role that exists already: 42710) is the caller's,
   * with nothing changed. Returns false when no verified spare is left (the caller clones; `before`
   * did not run). The spare is taken by the name the last refill (or lookup) saw it under, and the
   * message itself proves, after the rename and inside its transaction, that it is still closed and
   * marked verified (docs/decisions/072): the lookup runs only when no name is known. Concurrent
   * claims race on the rename: the loser sees "does not exist" and tries the next.
   */
  async claim(
    admin: Queryable,
    server: ClinicServer,
    target: string,
    then: string,
    before = '',
  ): Promise<boolean> {
    if (this.size === 0) return false;
    if (target.includes('$')) throw new Error(`not a clinic database name: ${target}`);
    const prefix = this.prefix(server);
    const known = this.known(server);
    const tried = new Set<string>();
    const next = async () => {
      for (const name of known) if (!name.startsWith(prefix)) known.delete(name);
      if (known.size === 0) {
        const { rows } = await admin.query<{ datname: string }>(
          `SELECT datname FROM pg_database
            WHERE starts_with(datname, $1) AND NOT datallowconn AND shobj_description(oid, 'pg_database') = $2
            ORDER BY oid`,
          [prefix, VERIFIED],
        );
        for (const { datname } of rows) if (!tried.has(datname)) known.add(datname);
      }
      const [name] = known;
      if (name !== undefined) known.delete(name);
      return name;
    };
    const claimed = await (async () => {
      for (let spare = await next(); spare !== undefined; spare = await next()) {
        tried.add(spare);
        try {
          await admin.query(
            [
              before,
              `ALTER DATABASE ${quoteIdent(spare)} RENAME TO ${quoteIdent(target)}`,
              stillVerified(target),
              `ALTER DATABASE ${quoteIdent(target)} ALLOW_CONNECTIONS true`,
              then,
            ]
              .filter((sql) => sql !== '')
              .join('; '),
          );
        } catch (error) {
          const code = (error as { code?: string }).code;
          // 3D000: another claim renamed it first; 55006: something is connected to it;
          // STALE_SPARE: reopened (or unmarked) since it was seen: never handed out.
          if (code !== '3D000' && code !== '55006' && code !== STALE_SPARE) {
            // The caller's error (its role, its grants): the spare is as it was, still a spare.
            known.add(spare);
            throw error;
          }
          continue;
        }
        return true;
      }
      return false;
    })();
    // Within a run (deferRefills), after the run: the refill's clone is a core's worth of work
    // for tens of ms, which on a small machine the rest of the claiming run would wait behind.
    const deferred = this.deferring.getStore();
    if (deferred) deferred.add(server);
    else this.refillInBackground(server);
    return claimed;
  }

  /** Names of verified spares last seen on `server` (a hint: every claim proves its spare). */
  private known(server: ClinicServer): Set<string> {
    let names = this.verifiedNames.get(server.id);
    if (!names) {
      names = new Set();
      this.verifiedNames.set(server.id, names);
    }
    return names;
  }

  /**
   * Runs `work` (a provisioning run) with the refills its claims start held back until it has
   * settled, however it ends (decision 070). A claim outside such work refills at once.
   */
  async deferRefills<T>(work: () => Promise<T>): Promise<T> {
    const servers = new Set<ClinicServer>();
    try {
      return await this.deferring.run(servers, work);
    } finally {
      for (const server of servers) this.refillInBackground(server);
    }
  }

  /**
   * Takes a claimed database that failed the check after its claim out of the clinic's name:
   * renamed back among the spares, commented with why, its role's CONNECT revoked. It is kept,
   * never dropped here: something changed it since it was made, and what it holds is for an
   * operator to look at (the warning names it; `refill` never drops a rejected spare).
   */
  async reject(admin: Queryable, server: ClinicServer, database: string, role: string, why: string) {
    const name = `${this.prefix(server)}${randomBytes(6).toString('hex')}`;
    for (let attempt = 0; ; attempt++) {
      try {
        await admin.query(`ALTER DATABASE ${quoteIdent(database)} RENAME TO ${quoteIdent(name)}`);
        break;
      } catch (error) {
        // 55006: the session the check just closed has not quite gone yet (a few ms at most).
        if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
        await new Promise((done) => setTimeout(done, 20));
      }
    }
    await admin.query(`REVOKE ALL ON DATABASE ${quoteIdent(name)} FROM ${quoteIdent(role)}`);
    await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(`${REJECTED}${why}`)}`);
    this.logger.warn(
      { server: server.name, spare: name, reason: why },
      'claimed warm spare failed its check: kept aside, not handed out',
    );
  }

  refillInBackground(server: ClinicServer): void {
    if (this.closed || this.size === 0) return;
    if (this.filling.has(server.id)) {
      // A claim during a refill may have taken a spare the refill already counted: go again.
      this.again.add(server.id);
      return;
    }
    const job = (async () => {
      do {
        this.again.delete(server.id);
        await this.refill(server).catch((error: unknown) =>
          this.logger.warn({ err: error, server: server.id }, 'warm pool refill failed'),
        );
      } while (this.again.has(server.id) && !this.closed);
    })().finally(() => {
      this.filling.delete(server.id);
      // A claim between the last check and here asked again: honour it.
      if (this.again.has(server.id)) this.refillInBackground(server);
    });
    this.filling.set(server.id, job);
  }

  /**
   * Makes verified spares until the server has `size` of the current version; drops outdated
   * ones that are untouched (verified and closed, or never verified). Makes none while the
   * template is open to connections: what was done there would be copied unseen.
   */
  async refill(server: ClinicServer): Promise<void> {
    // On the server's warm admin pool, not a session of its own: a new session costs the server
    // ~6 ms of CPU and the refill follows every claim (decision 070).
    await withPooled(server.admin, async (admin) => {
      // One refill at a time per server, cluster-wide: instances that counted the same spares
      // would each clone the difference (three instances, three times the clones). The others
      // wait and then count what the first left. A session lock: released below once the work
      // is done; if anything throws, `withPooled` destroys the session, which releases it, as
      // does the process's death.
      await admin.query('SELECT pg_advisory_lock(hashtext($1))', [REFILL_LOCK]);
      await this.fill(admin, server);
      const { rows } = await admin.query<{ released: boolean }>(
        'SELECT pg_advisory_unlock(hashtext($1)) AS released',
        [REFILL_LOCK],
      );
      // Never hand the pool a session that still holds it (withPooled destroys it on a throw).
      if (rows[0]?.released !== true) throw new Error('warm pool refill lock was not held');
    });
  }

  /** {@link refill}'s work, under its lock. */
  private async fill(admin: Queryable, server: ClinicServer): Promise<void> {
    const prefix = this.prefix(server);
    const { rows } = await admin.query<SpareRow>(
      `SELECT datname, datallowconn AS open, shobj_description(oid, 'pg_database') AS note
         FROM pg_database WHERE starts_with(datname, $1) OR datname = $2`,
      [SPARE_PREFIX, server.template.name],
    );
    const template = rows.find((row) => row.datname === server.template.name);
    const spares = rows.filter((row) => row !== template);
    const touched = (row: SpareRow) => row.note?.startsWith(REJECTED) || (row.note === VERIFIED && row.open);
    for (const row of spares.filter((row) => !row.datname.startsWith(prefix) && !touched(row))) {
      // Spares never held clinic data: the door lets them go on their own decision.
      await dropObjects(admin, { database: row.datname }, { kind: 'spare' });
    }
    const current = spares.filter((row) => row.datname.startsWith(prefix));
    const reopened = current.filter((row) => row.note === VERIFIED && row.open).map((row) => row.datname);
    if (reopened.length > 0)
      this.logger.warn(
        { server: server.name, spares: reopened },
        'warm spares reopened since they were made: kept, never handed out',
      );
    const known = this.known(server);
    let count = 0;
    for (const row of current.filter((row) => row.note === null)) {
      if (row.open) {
        // Unmarked and open: an earlier version's clone, stopped before its inspection, or
        // opened since. Never claimable, never a clinic's: the door lets it go.
        await dropObjects(admin, { database: row.datname }, { kind: 'spare' });
        continue;
      }
      // Born closed; the refill that made it stopped before its mark.
      await this.mark(admin, row.datname);
      known.add(row.datname);
      count += 1;
    }
    const verified = current.filter((row) => row.note === VERIFIED && !row.open).map((row) => row.datname);
    for (const name of verified) known.add(name);
    count += verified.length;
    if (count >= this.size || this.closed) return;
    if (template?.open !== false) {
      // Opened since it was built (or gone): its copies would carry what was done there unseen.
      // Registrations clone it and check the clone whole meanwhile.
      this.logger.warn(
        { server: server.name, template: server.template.name },
        'clinic template is not closed to connections: no warm spare made from it',
      );
      return;
    }
    for (; count < this.size && !this.closed; count++) {
      const name = `${prefix}${randomBytes(6).toString('hex')}`;
      await cloneDatabase(admin, name, server.template.name, { closed: true });
      await this.mark(admin, name);
      known.add(name);
    }
  }

  /** Marks a spare born closed claimable (CREATE DATABASE cannot share its message). */
  private async mark(admin: Queryable, name: string): Promise<void> {
    await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(VERIFIED)}`);
  }

  /** Waits for background refills (tests, shutdown). */
  async idle(): Promise<void> {
    // Refills may start further refills; wait until none is left.
    while (this.filling.size > 0) await Promise.all(this.filling.values());
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
  }
}

/**
 * SQL, for the claim's message right after its rename: raises STALE_SPARE unless `database` (the
 * spare under its new name, this transaction's own row) is still closed and marked verified. A
 * concurrent reopening committed before the rename is seen here; one after it waits for the
 * claim's transaction, and the check after the claim (verify_database) reads what it changed.
 */
function stillVerified(database: string): string {
  return `DO $claim$ BEGIN IF NOT EXISTS (SELECT FROM pg_database WHERE datname = ${quoteLiteral(database)} AND NOT datallowconn AND shobj_description(oid, 'pg_database') = ${quoteLiteral(VERIFIED)}) THEN RAISE EXCEPTION 'not a closed, verified warm spare' USING ERRCODE = '${STALE_SPARE}'; END IF; END $claim$`;
}
