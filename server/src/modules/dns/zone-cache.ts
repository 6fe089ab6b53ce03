/**
 * The zone the built-in DNS server answers from, held in memory. A flood of queries (random
 * names included) then costs the central database nothing: the zone is read again only when it
 * changed, on a pool of its own so DNS can never take connections GraphQL needs.
 *
 * Every instance learns of a change through PostgreSQL NOTIFY, sent by a trigger on
 * `dns_records` (migration 20261201200000_dns_records_notify) whoever wrote the row; this
 * instance's own writes also invalidate it directly, so what it just published is answered at
 * once. A notification lost while the listener reconnects is covered by a reload at least every
 * {@link MAX_AGE_MS}.
 */
import pg from 'pg';
import { probedConnection } from '../../db/sql.js';
import type { Logger } from '../../logger.js';
import { createPostgresEventTarget, type PostgresEventTarget } from '../../pubsub/postgres-event-target.js';
import { type DnsRecord, type DnsRecordType, inZone } from './provider.js';
import type { ZoneData } from './server.js';

/** The trigger's channel and event (see the migration). */
export const ZONE_CHANGED_CHANNEL = 'onramp_dns_records';
export const ZONE_CHANGED_EVENT = 'changed';

/** Connections the cache may use to read the zone. */
const POOL_SIZE = 2;
/** Longest a snapshot is trusted without a notification. */
const MAX_AGE_MS = 30_000;
/** A zone read waiting longer than this (a locked table) fails; the next query tries again. */
const LOAD_TIMEOUT_MS = 5_000;

interface Snapshot {
  records: Map<string, DnsRecord[]>;
  /** Names with records and every ancestor of them inside the zone (empty non-terminals). */
  names: Set<string>;
  loadedAt: number;
}

export interface ZoneCacheOptions {
  connectionString: string;
  zone: string;
  logger: Logger;
}

export class ZoneCache implements ZoneData {
  private readonly pool: pg.Pool;
  private events: PostgresEventTarget | undefined;
  private snapshot: Snapshot | undefined;
  /** Bumped by every invalidation; a snapshot is current when loaded at the latest one. */
  private generation = 0;
  private loadedGeneration = -1;
  private loading: Promise<void> | undefined;

  constructor(private readonly options: ZoneCacheOptions) {
    this.pool = new pg.Pool({
      ...probedConnection(options.connectionString),
      max: POOL_SIZE,
      application_name: 'onramp-dns',
      statement_timeout: LOAD_TIMEOUT_MS,
      idleTimeoutMillis: 60_000,
    });
    this.pool.on('error', (error) => options.logger.warn({ err: error }, 'idle DNS zone connection lost'));
  }

  /** Listens for changes, then reads the zone once. */
  async start(): Promise<void> {
    this.events = await createPostgresEventTarget({
      connectionString: this.options.connectionString,
      channel: ZONE_CHANGED_CHANNEL,
      applicationName: 'onramp-dns-listener',
      logger: this.options.logger,
    });
    this.events.addEventListener(ZONE_CHANGED_EVENT, () => this.invalidate());
    await this.current();
  }

  async close(): Promise<void> {
    await this.events?.close();
    await this.loading?.catch(() => {});
    await this.pool.end().catch(() => {});
  }

  /** The zone changed: the next query reads it again. */
  invalidate(): void {
    this.generation += 1;
  }

  async recordsOf(name: string): Promise<DnsRecord[]> {
    return (await this.current()).records.get(name) ?? [];
  }

  async nameExists(name: string): Promise<boolean> {
    return (await this.current()).names.has(name);
  }

  private async current(): Promise<Snapshot> {
    // Two rounds at most: a change landing during a read needs one more, a stream of changes
    // must not keep a query waiting.
    for (let round = 0; round < 2; round += 1) {
      const fresh =
        this.snapshot &&
        this.loadedGeneration === this.generation &&
        Date.now() - this.snapshot.loadedAt < MAX_AGE_MS;
      if (fresh && this.snapshot) return this.snapshot;
      // One read at a time, shared by every query waiting for it.
      this.loading ??= this.load().finally(() => {
        this.loading = undefined;
      });
      await this.loading;
    }
    if (!this.snapshot) throw new Error('DNS zone not loaded');
    return this.snapshot;
  }

  private async load(): Promise<void> {
    const generation = this.generation;
    const { rows } = await this.pool.query<DnsRecord>(
      'SELECT name, type, value, ttl FROM dns_records ORDER BY name, type, value',
    );
    const records = new Map<string, DnsRecord[]>();
    const names = new Set<string>();
    for (const row of rows) {
      const record = { ...row, type: row.type as DnsRecordType };
      const list = records.get(record.name);
      if (list) list.push(record);
      else records.set(record.name, [record]);
      // The name and its ancestors down to the zone exist (RFC 8020: no NXDOMAIN above data).
      for (
        let name = record.name;
        inZone(name, this.options.zone);
        name = name.slice(name.indexOf('.') + 1)
      ) {
        if (names.has(name)) break;
        names.add(name);
        if (!name.includes('.')) break;
      }
    }
    this.snapshot = { records, names, loadedAt: Date.now() };
    this.loadedGeneration = generation;
  }
}
