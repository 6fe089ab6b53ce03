/**
 * A warm pool of spare clinic databases, cloned from the current template and inspected when
 * they are made, so a registration's database is a rename and grants instead of a copy and a
 * full check (docs/decisions/055). A spare is claimable once it is *verified*: inspected as the
 * clinic group role (the privileges every clinic role inherits), then closed to connections and
 * commented `onramp:spare:verified`. Nothing can change a closed spare without reopening it, and
 * a reopened one is never handed out. Spares are named by template version; a new version simply
 * stops matching old spares, which `refill` drops.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { ClinicServer } from '../../db/database.js';
import { dropObjects, SPARE_PREFIX } from '../../db/drop.js';
import { databaseUrl, quoteIdent, withClient } from '../../db/sql.js';
import type { Logger } from '../../logger.js';
import { CLINIC_GROUP_ROLE, cloneDatabase, quoteLiteral } from './admin.js';
import { inspectClinicSchema } from './integrity.js';
import type { ClinicSchemaShape } from './schema-shape.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export { SPARE_PREFIX };

/** The comment of a spare that passed its inspection (and was closed right after). */
const VERIFIED = 'onramp:spare:verified';
/** The comment of a spare that failed one, followed by why: kept for the operator, never claimed. */
const REJECTED = 'onramp:spare:rejected: ';
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
  private again = new Set<string>();
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly logger: Logger,
    private readonly shape: ClinicSchemaShape,
  ) {}

  private prefix(server: ClinicServer): string {
    return `${SPARE_PREFIX}${server.template.version.replaceAll('-', '_')}_`;
  }

  /**
   * Renames a verified spare to `target` and opens it to connections, followed by `then` (SQL:
   * the caller's grants, `clinicDatabaseGrants`) in the same message: one round trip and one
   * implicit transaction, so a claim is all done or not at all. Returns false when no verified
   * spare is left (the caller clones). Concurrent claims race on the rename: the loser sees
   * "does not exist" and tries the next.
   */
  async claim(admin: Queryable, server: ClinicServer, target: string, then: string): Promise<boolean> {
    if (this.size === 0) return false;
    const claimed = await (async () => {
      const { rows } = await admin.query<{ datname: string }>(
        `SELECT datname FROM pg_database
          WHERE starts_with(datname, $1) AND NOT datallowconn AND shobj_description(oid, 'pg_database') = $2
          ORDER BY oid`,
        [this.prefix(server), VERIFIED],
      );
      for (const { datname } of rows) {
        try {
          await admin.query(
            `ALTER DATABASE ${quoteIdent(datname)} RENAME TO ${quoteIdent(target)}; ALTER DATABASE ${quoteIdent(target)} ALLOW_CONNECTIONS true; ${then}`,
          );
        } catch (error) {
          const code = (error as { code?: string }).code;
          // 3D000: another claim renamed it first; 55006: something is connected to it.
          if (code !== '3D000' && code !== '55006') throw error;
          continue;
        }
        return true;
      }
      return false;
    })();
    this.refillInBackground(server);
    return claimed;
  }

  /**
   * Takes a claimed database that failed the check after its claim out of the clinic's name:
   * renamed back among the spares, commented with why, its role's CONNECT revoked. It is kept,
   * never dropped here: something changed it after its inspection, and what it holds is for an
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
   * ones that are untouched (verified and closed, or never verified). Stops at a spare that fails
   * its inspection: the template itself is then suspect, and the next refill tries again.
   */
  async refill(server: ClinicServer): Promise<void> {
    const prefix = this.prefix(server);
    await withClient(server.url, async (admin) => {
      // One refill at a time per server, cluster-wide: instances that counted the same spares
      // would each clone the difference (three instances, three times the clones). The others
      // wait and then count what the first left. A session lock: the connection's end, or the
      // process's death, releases it.
      await admin.query('SELECT pg_advisory_lock(hashtext($1))', [REFILL_LOCK]);
      const { rows } = await admin.query<SpareRow>(
        `SELECT datname, datallowconn AS open, shobj_description(oid, 'pg_database') AS note
           FROM pg_database WHERE starts_with(datname, $1)`,
        [SPARE_PREFIX],
      );
      const touched = (row: SpareRow) =>
        row.note?.startsWith(REJECTED) || (row.note === VERIFIED && row.open);
      for (const row of rows.filter((row) => !row.datname.startsWith(prefix) && !touched(row))) {
        // Spares never held clinic data: the door lets them go on their own decision.
        await dropObjects(admin, { database: row.datname }, { kind: 'spare' });
      }
      const current = rows.filter((row) => row.datname.startsWith(prefix));
      const reopened = current.filter((row) => row.note === VERIFIED && row.open).map((row) => row.datname);
      if (reopened.length > 0)
        this.logger.warn(
          { server: server.name, spares: reopened },
          'warm spares reopened after their inspection: kept, never handed out',
        );
      // Cloned but not inspected: a process stopped in between (or another instance is at it;
      // inspecting twice is harmless).
      const pending = current.filter((row) => row.note === null).map((row) => row.datname);
      let count = current.filter((row) => row.note === VERIFIED && !row.open).length;
      while (!this.closed && count < this.size) {
        const name = pending.shift() ?? `${prefix}${randomBytes(6).toString('hex')}`;
        if (!current.some((row) => row.datname === name))
          await cloneDatabase(admin, name, server.template.name);
        if (!(await this.verify(admin, server, name))) return;
        count += 1;
      }
    });
  }

  /**
   * Inspects a spare as the clinic group role (tables present and readable, migration history
   * at the template's version), then closes it and marks it verified, or marks it rejected.
   */
  private async verify(admin: Queryable, server: ClinicServer, name: string): Promise<boolean> {
    const found = await withClient(databaseUrl(server.url, name), async (spare) => {
      await spare.query(`SET ROLE ${quoteIdent(CLINIC_GROUP_ROLE)}`);
      return inspectClinicSchema(spare, this.shape, server.template.version);
    });
    if (found.errors.length > 0) {
      const why = found.errors.join('; ');
      await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(`${REJECTED}${why}`)}`);
      this.logger.warn(
        { server: server.name, spare: name, reason: why },
        'warm spare failed its inspection: kept, never handed out',
      );
      return false;
    }
    // Closed first, then marked: a claim only takes a spare that is both.
    await admin.query(`ALTER DATABASE ${quoteIdent(name)} ALLOW_CONNECTIONS false`);
    await admin.query(`COMMENT ON DATABASE ${quoteIdent(name)} IS ${quoteLiteral(VERIFIED)}`);
    return true;
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
