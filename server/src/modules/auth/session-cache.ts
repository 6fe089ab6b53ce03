/**
 * The session check of every signed-in request as a lookup in memory (docs/decisions/048). A
 * session's row is read once, then kept while this instance is sure to hear of its end: every
 * session end travels on the event bus (`sessions`), published by the code that ended it (which
 * answers only once the broker has it) and by triggers of the central database (heard on
 * either bus) at commit (sessions revoked, a user's role or clinic changed, a user deleted), so an
 * operator's SQL counts too. An end drops the user's entries on every instance.
 *
 * Hearing of it eventually is not enough: an end's event may still be on its way when the next
 * request comes, however fast the link. So a request is answered from memory only after a
 * round trip on the bus's own connection (`EventBus.sync`), which returns after every event
 * sent before it: an end that happened before the request came is known by then. Concurrent
 * requests share one round trip; it replaces a query on the request pool.
 *
 * When the bus cannot promise that — not connected, or reconnected since the entry was read
 * (events in between are lost) — the entry is not trusted and the row is read again, as it was
 * on every request before.
 */
import type { UserRole } from '../../generated/central/enums.js';
import type { EventBus } from '../../pubsub/index.js';

export interface LiveSession {
  userId: string;
  role: UserRole;
  clinicId: string | null;
  /** When the session (not the access token) expires. */
  expiresAt: Date;
}

export interface SessionCacheOptions {
  /**
   * Entries kept at most; the oldest go first.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * How long an entry is trusted at most: a bound on what a lost event could cost if the bus
   * failed to notice its own outage.
   * @default 60000
   */
  maxAgeMs?: number;
}

interface Entry {
  session: LiveSession;
  generation: number;
  readAt: number;
}

export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly events: AsyncIterator<{ userId: string }>;
  /** Bumped by every session end: a read that overlapped one is not kept. */
  private ends = 0;
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  /** Lookups answered from memory and from the database (tests, metrics). */
  readonly stats = { hits: 0, reads: 0 };

  constructor(
    private readonly bus: Pick<EventBus, 'pubsub' | 'connected' | 'generation' | 'sync'>,
    options: SessionCacheOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.maxAgeMs = options.maxAgeMs ?? 60_000;
    this.events = bus.pubsub.subscribe('sessions')[Symbol.asyncIterator]();
    void this.listen();
  }

  private async listen(): Promise<void> {
    for (;;) {
      const next = await this.events.next();
      if (next.done) return;
      this.ended(next.value.userId);
    }
  }

  /** Forgets the user's sessions here (the bus does it on the other instances). */
  ended(userId: string): void {
    this.ends += 1;
    for (const [sessionId, entry] of this.entries) {
      if (entry.session.userId === userId) this.entries.delete(sessionId);
    }
  }

  /** The live session `sessionId`, from memory when it can be trusted, else from `read`. */
  async get(
    sessionId: string,
    read: () => Promise<LiveSession | undefined>,
  ): Promise<LiveSession | undefined> {
    const now = Date.now();
    const trusted = (entry: Entry | undefined): entry is Entry =>
      entry !== undefined &&
      this.bus.connected() &&
      entry.generation === this.bus.generation() &&
      now - entry.readAt < this.maxAgeMs &&
      entry.session.expiresAt.getTime() > now;
    // Still there once the bus has delivered what was sent before this request: no end dropped it.
    if (trusted(this.entries.get(sessionId)) && (await this.bus.sync())) {
      const entry = this.entries.get(sessionId);
      if (trusted(entry)) {
        this.stats.hits += 1;
        return entry.session;
      }
    }
    this.entries.delete(sessionId);
    const ends = this.ends;
    const generation = this.bus.generation();
    const connected = this.bus.connected();
    this.stats.reads += 1;
    const session = await read();
    // Kept only if no end (of anyone) and no outage of the bus overlapped the read.
    if (session && connected && this.ends === ends && this.bus.generation() === generation) {
      if (this.entries.size >= this.maxEntries) {
        const oldest = this.entries.keys().next().value;
        if (oldest !== undefined) this.entries.delete(oldest);
      }
      this.entries.set(sessionId, { session, generation, readAt: now });
    }
    return session;
  }

  async close(): Promise<void> {
    this.entries.clear();
    await this.events.return?.();
  }
}
