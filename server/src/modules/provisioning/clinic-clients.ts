/**
 * Prisma clients for clinic databases, cached and bounded. Every client owns a pg pool, i.e.
 * real backends on a server shared by many clinics, so the number of open clients (and with it
 * the number of connections) is capped, least recently used clients go first and idle ones are
 * closed. Call `get` per unit of work rather than keeping a client: an evicted client that is
 * used again would quietly open a new pool this cache no longer tracks.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import { probedConnection } from '../../db/sql.js';
import { retryTransactionStarts } from '../../db/transaction-start.js';
import { PrismaClient } from '../../generated/clinic/client.js';
import type { Logger } from '../../logger.js';

export type ClinicPrisma = PrismaClient;

export interface ClinicClientCacheOptions {
  /** Connection string for a clinic's database; called once per client created. */
  resolve: (clinicId: string) => Promise<string>;
  /**
   * Most clients kept open at once; the least recently used one is closed to make room.
   * @default 50
   */
  maxClients?: number;
  /**
   * A client not handed out for this long is closed by a periodic sweep. Pool connections
   * idle this long are closed too, so a quiet but cached clinic holds no backends.
   * @default 60_000
   */
  idleTimeoutMs?: number;
  /**
   * Pool size of each client; the cache opens at most `maxClients × connectionsPerClient`
   * connections.
   * @default 2
   */
  connectionsPerClient?: number;
  /** Receives disconnect and idle-connection errors, which are never thrown. */
  logger?: Logger;
}

export interface ClinicClientCacheStats {
  size: number;
  hits: number;
  misses: number;
  /** Clients closed by the size limit or the idle sweep (not by `evict` or `close`). */
  evictions: number;
}

interface Entry {
  /** Shared by concurrent `get`s so one clinic never gets two clients. */
  client: Promise<ClinicPrisma>;
  lastUsed: number;
}

export class ClinicClientCache {
  readonly #resolve: (clinicId: string) => Promise<string>;
  readonly #maxClients: number;
  readonly #idleTimeoutMs: number;
  readonly #connectionsPerClient: number;
  readonly #logger: Logger | undefined;
  /** Map order is recency order: a hit moves its entry to the end, eviction takes the first. */
  readonly #entries = new Map<string, Entry>();
  /** Disconnects under way; `close` and new clients wait for them. */
  readonly #disconnecting = new Set<Promise<void>>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(options: ClinicClientCacheOptions) {
    this.#resolve = options.resolve;
    this.#maxClients = options.maxClients ?? 50;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.#connectionsPerClient = options.connectionsPerClient ?? 2;
    this.#logger = options.logger;
    if (this.#maxClients < 1) throw new Error('maxClients must be at least 1');
    // Sweeping at half the timeout closes an idle client at most 1.5 × idleTimeoutMs after its
    // last use; unref() so a forgotten cache never keeps the process alive.
    this.#timer = setInterval(() => this.#sweep(), Math.max(this.#idleTimeoutMs / 2, 10));
    this.#timer.unref();
  }

  get size(): number {
    return this.#entries.size;
  }

  stats(): ClinicClientCacheStats {
    return { size: this.size, hits: this.#hits, misses: this.#misses, evictions: this.#evictions };
  }

  get(clinicId: string): Promise<ClinicPrisma> {
    if (this.#closed) return Promise.reject(new Error('clinic client cache is closed'));
    const existing = this.#entries.get(clinicId);
    if (existing) {
      this.#hits++;
      existing.lastUsed = Date.now();
      this.#entries.delete(clinicId);
      this.#entries.set(clinicId, existing);
      return existing.client;
    }
    this.#misses++;
    // Make room before creating, so the new client waits for the evicted ones' disconnects.
    while (this.#entries.size >= this.#maxClients) {
      const oldest = this.#entries.keys().next().value as string;
      this.#evictions++;
      void this.#retire(oldest);
    }
    const entry: Entry = { client: this.#create(clinicId), lastUsed: Date.now() };
    this.#entries.set(clinicId, entry);
    // A failed creation (an unknown clinic, a resolver outage) must not stick: the next get retries.
    entry.client.catch(() => {
      if (this.#entries.get(clinicId) === entry) this.#entries.delete(clinicId);
    });
    return entry.client;
  }

  /** Closes the clinic's client, if any, and waits for its connections to end (before DROP DATABASE, say). */
  async evict(clinicId: string): Promise<void> {
    await this.#retire(clinicId);
  }

  /** Closes every client and stops the sweep; later `get`s reject. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const clinicId of [...this.#entries.keys()]) void this.#retire(clinicId);
    await Promise.all(this.#disconnecting);
  }

  async #create(clinicId: string): Promise<ClinicPrisma> {
    // Disconnects run in the background for callers of get, but a new pool only opens once the
    // retired ones have ended: otherwise a burst of misses could exceed the connection bound.
    await Promise.all(this.#disconnecting);
    const connectionString = await this.#resolve(clinicId);
    const adapter = new PrismaPg(
      {
        // Probed by PostgreSQL (decision 092): a vanished host's transactions here end in ~25 s.
        ...probedConnection(connectionString),
        max: this.#connectionsPerClient,
        idleTimeoutMillis: this.#idleTimeoutMs,
        application_name: 'onramp-clinic',
      },
      {
        // An idle connection dies when its database is dropped or the server restarts; the next
        // query reconnects, so this is worth a warning, not a crash.
        onPoolError: (error) => this.#logger?.warn({ err: error, clinicId }, 'clinic connection lost'),
      },
    );
    return retryTransactionStarts(new PrismaClient({ adapter }));
  }

  /** Forgets the clinic's entry and disconnects its client; never rejects. */
  #retire(clinicId: string): Promise<void> {
    const entry = this.#entries.get(clinicId);
    if (!entry) return Promise.resolve();
    this.#entries.delete(clinicId);
    const done: Promise<void> = entry.client
      .then(
        (client) => client.$disconnect(),
        // Creation failed: its get already rejected and there is nothing to close.
        () => {},
      )
      .catch((error: unknown) =>
        this.#logger?.warn({ err: error, clinicId }, 'clinic client disconnect failed'),
      )
      .finally(() => this.#disconnecting.delete(done));
    this.#disconnecting.add(done);
    return done;
  }

  #sweep(): void {
    const cutoff = Date.now() - this.#idleTimeoutMs;
    // Recency order: the first recently used entry ends the idle ones.
    for (const [clinicId, entry] of this.#entries) {
      if (entry.lastUsed > cutoff) break;
      this.#evictions++;
      void this.#retire(clinicId);
    }
  }
}
