/**
 * A warm pool of spare clinic databases, already cloned from the current template, so a
 * registration can claim one with a rename (a catalog update) instead of copying files.
 * Spares are named by template version; a new version simply stops matching old spares,
 * which `refill` drops.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { ClinicServer } from '../../db/database.js';
import { dropObjects, SPARE_PREFIX } from '../../db/drop.js';
import { quoteIdent, withClient } from '../../db/sql.js';
import type { Logger } from '../../logger.js';
import { cloneDatabase } from './admin.js';

type Queryable = Pick<pg.ClientBase, 'query'>;

export { SPARE_PREFIX };

export class WarmPool {
  private filling = new Map<string, Promise<void>>();
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
   * Renames a spare to `target`. Returns false when the pool is empty (the caller clones).
   * Concurrent claims race on the rename: the loser sees "does not exist" and tries the next.
   */
  async claim(admin: Queryable, server: ClinicServer, target: string): Promise<boolean> {
    if (this.size === 0) return false;
    const claimed = await (async () => {
      const { rows } = await admin.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY oid',
        [this.prefix(server)],
      );
      for (const { datname } of rows) {
        try {
          await admin.query(`ALTER DATABASE ${quoteIdent(datname)} RENAME TO ${quoteIdent(target)}`);
          return true;
        } catch (error) {
          const code = (error as { code?: string }).code;
          // 3D000: another claim renamed it first; 55006: something is connected to it.
          if (code !== '3D000' && code !== '55006') throw error;
        }
      }
      return false;
    })();
    this.refillInBackground(server);
    return claimed;
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

  /** Clones spares until the server has `size` of the current version; drops outdated ones. */
  async refill(server: ClinicServer): Promise<void> {
    const prefix = this.prefix(server);
    await withClient(server.url, async (admin) => {
      const { rows } = await admin.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
        [SPARE_PREFIX],
      );
      for (const { datname } of rows.filter((row) => !row.datname.startsWith(prefix))) {
        // Spares never held clinic data: the door lets them go on their own decision.
        await dropObjects(admin, { database: datname }, { kind: 'spare' });
      }
      let count = rows.filter((row) => row.datname.startsWith(prefix)).length;
      while (!this.closed && count < this.size) {
        await cloneDatabase(admin, `${prefix}${randomBytes(6).toString('hex')}`, server.template.name);
        count += 1;
      }
    });
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
