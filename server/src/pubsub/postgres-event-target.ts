/**
 * A TypedEventTarget over PostgreSQL LISTEN/NOTIFY, so that every process sharing the central
 * database (API instances, workers) sees the same events without another piece of
 * infrastructure.
 */
import type {
  TypedEventListenerOrEventListenerObject,
  TypedEventTarget,
} from '@graphql-yoga/typed-event-target';
import pg from 'pg';
import { probedConnection, quoteIdent } from '../db/sql.js';
import type { Logger } from '../logger.js';
import { sharedBarrier } from './barrier.js';
import { parse, stringify } from './wire.js';

/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more (in the default configuration). */
export const MAX_NOTIFY_PAYLOAD_BYTES = 7999;

const CONNECT_TIMEOUT_MS = 10_000;

/** Thrown by `dispatchEvent` before anything is sent; the event reaches nobody. */
export class EventPayloadTooLargeError extends Error {
  override name = 'EventPayloadTooLargeError';
  constructor(
    readonly type: string,
    readonly bytes: number,
  ) {
    super(
      `event "${type}" is ${bytes} bytes once serialised; PostgreSQL NOTIFY allows at most ` +
        `${MAX_NOTIFY_PAYLOAD_BYTES} bytes: publish an id and let subscribers load the rest`,
    );
  }
}

export interface PostgresEventTargetOptions {
  connectionString: string;
  /**
   * NOTIFY channel shared by every process of one deployment.
   * @default 'onramp_events'
   */
  channel?: string;
  logger: Logger;
  /**
   * `application_name` of the listening connection; the publishing pool uses it with
   * `-publisher` appended. Lets operators find (and tests terminate) the listener.
   * @default 'onramp-events'
   */
  applicationName?: string;
  /**
   * Delay before the first reconnection attempt, doubled after each failure.
   * @default 100
   */
  reconnectInitialDelayMs?: number;
  /**
   * Upper bound of the reconnection delay.
   * @default 10000
   */
  reconnectMaxDelayMs?: number;
  /**
   * How long an event waits for others to share its NOTIFY statement (docs/decisions/081); 0
   * sends what was published in the same turn of the event loop. `published()` and `close()`
   * send the waiting ones at once.
   * @default EVENT_BATCH_WINDOW_MS
   */
  batchWindowMs?: number;
}

/**
 * A step's events are a few milliseconds apart, each batch a statement and a commit of its own:
 * 20 ms gathers a registration's ~11 into ~3, a delay no one watching a console can see.
 */
export const EVENT_BATCH_WINDOW_MS = 20;

export interface PostgresEventTarget extends TypedEventTarget<CustomEvent> {
  /** Whether the listener is connected: events published now reach this process. */
  connected(): boolean;
  /** Counts the listener's losses: notifications sent since the last one may be gone. */
  generation(): number;
  /** Calls `listener` each time the listener is back after a loss; returns the unsubscribe. */
  onReconnected(listener: () => void): () => void;
  /**
   * Resolves true once every notification committed before the call has reached this process's
   * listeners; false when the listener is down (those may never arrive).
   */
  sync(): Promise<boolean>;
  /**
   * Resolves once every event dispatched so far has been sent to PostgreSQL (or failed, logged);
   * those waiting for their batch's window are sent at once.
   */
  published(): Promise<void>;
  /** Stops reconnecting, waits for pending publishes and ends every connection. */
  close(): Promise<void>;
}

interface Envelope {
  type: string;
  detail?: unknown;
}

/**
 * Resolves once the first LISTEN is established. Local listeners run only when a notification
 * comes back from PostgreSQL, never directly from `dispatchEvent`, so every process (the
 * publisher included) sees each event once and all of them in PostgreSQL's commit order.
 * Delivery is at most once: notifications sent while the listener is reconnecting are lost, so
 * `generation` and `onReconnected` tell consumers when to reread what they learned from events.
 */
export async function createPostgresEventTarget(
  options: PostgresEventTargetOptions,
): Promise<PostgresEventTarget> {
  const {
    connectionString,
    channel = 'onramp_events',
    logger,
    applicationName = 'onramp-events',
    reconnectInitialDelayMs = 100,
    reconnectMaxDelayMs = 10_000,
    batchWindowMs = EVENT_BATCH_WINDOW_MS,
  } = options;
  // pg_notify() refuses longer names while LISTEN would silently truncate them: fail early.
  if (channel.length === 0 || Buffer.byteLength(channel) > 63) {
    throw new Error('event channel must be 1 to 63 bytes long');
  }

  const local = new EventTarget();
  const pool = new pg.Pool({
    ...probedConnection(connectionString),
    max: 2,
    application_name: `${applicationName}-publisher`,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
  });
  pool.on('error', (error) => logger.warn({ err: error, channel }, 'idle event publisher connection lost'));

  let closed = false;
  let closing: Promise<void> | undefined;
  let listener: pg.Client | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let reconnecting: Promise<void> | undefined;
  // One publish at a time: the pool's two connections could otherwise commit out of order.
  let publishing: Promise<void> = Promise.resolve();
  /** Payloads waiting for the next publish statement (the one not yet sent). */
  let batch: string[] | undefined;
  /** Ends the waiting batch's window now (published(), close()). */
  let sendNow: (() => void) | undefined;
  let losses = 0;
  const reconnected = new Set<() => void>();

  function deliver(message: pg.Notification): void {
    if (message.channel !== channel || message.payload === undefined) return;
    let envelope: Envelope;
    try {
      envelope = parse(message.payload) as Envelope;
    } catch {
      envelope = { type: '' };
    }
    if (typeof envelope?.type !== 'string' || envelope.type === '') {
      // Something else notifies on our channel; its payload is not ours to log.
      logger.warn({ channel }, 'ignoring a notification that is not an event');
      return;
    }
    local.dispatchEvent(new CustomEvent(envelope.type, { detail: envelope.detail }));
  }

  async function listen(): Promise<pg.Client> {
    const client = new pg.Client({
      // Keepalives notice a silently dead peer, and let the server end a vanished host's LISTEN
      // session, which would hold back the notification queue (decision 092); the timeout keeps
      // close() from waiting forever.
      ...probedConnection(connectionString),
      application_name: applicationName,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    let alive = true;
    const lost = (error?: Error) => {
      if (!alive) return;
      alive = false;
      if (listener === client) onListenerLost(client, error);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', deliver);
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(channel)}`);
    } catch (error) {
      alive = false;
      await client.end().catch(() => {});
      throw error;
    }
    if (!alive) throw new Error('event listener connection closed while starting');
    return client;
  }

  function onListenerLost(client: pg.Client, error: Error | undefined): void {
    listener = undefined;
    losses += 1;
    client.end().catch(() => {});
    if (closed) return;
    logger.warn({ err: error, channel }, 'event listener connection lost; reconnecting');
    scheduleReconnect(0);
  }

  function scheduleReconnect(attempt: number): void {
    const ceiling = Math.min(reconnectMaxDelayMs, reconnectInitialDelayMs * 2 ** attempt);
    // Jitter keeps a fleet of instances from reconnecting in lockstep after a database restart.
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      reconnecting = reconnect(attempt).finally(() => {
        reconnecting = undefined;
      });
    }, delay);
  }

  async function reconnect(attempt: number): Promise<void> {
    if (closed) return;
    try {
      const client = await listen();
      if (closed) {
        await client.end().catch(() => {});
        return;
      }
      listener = client;
      logger.warn(
        { channel, attempts: attempt + 1 },
        'event listener reconnected; subscribers reread what they missed',
      );
      for (const callback of reconnected) {
        try {
          callback();
        } catch (error) {
          logger.warn({ err: error, channel }, 'event reconnection listener failed');
        }
      }
    } catch (error) {
      logger.warn({ err: error, channel, attempt: attempt + 1 }, 'event listener reconnection failed');
      if (!closed) scheduleReconnect(attempt + 1);
    }
  }

  try {
    listener = await listen();
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }

  // A round trip on the listening connection is a barrier: PostgreSQL sends a listener the
  // notifications already committed before it reads the next query, and the replies come back in
  // order, so once `SELECT 1` answers they have all been delivered.
  const sync = sharedBarrier(() => {
    const client = listener;
    if (!client) return Promise.resolve(false);
    return client.query('SELECT 1').then(
      () => listener === client,
      () => false,
    );
  });

  return {
    connected: () => listener !== undefined,
    sync,
    published() {
      sendNow?.();
      return publishing;
    },
    generation: () => losses,
    onReconnected(callback) {
      reconnected.add(callback);
      return () => reconnected.delete(callback);
    },
    addEventListener(
      type: string,
      callback: TypedEventListenerOrEventListenerObject<CustomEvent> | null,
      options?: AddEventListenerOptions | boolean,
    ): void {
      local.addEventListener(type, callback as EventListenerOrEventListenerObject | null, options);
    },
    removeEventListener(
      type: string,
      callback: TypedEventListenerOrEventListenerObject<CustomEvent> | null,
      options?: EventListenerOptions | boolean,
    ): void {
      local.removeEventListener(type, callback as EventListenerOrEventListenerObject | null, options);
    },
    dispatchEvent(event: CustomEvent): boolean {
      if (closed) throw new Error(`event "${event.type}" published after the event target was closed`);
      const envelope: Envelope = { type: event.type, detail: event.detail };
      const payload = stringify(envelope);
      const bytes = Buffer.byteLength(payload);
      if (bytes > MAX_NOTIFY_PAYLOAD_BYTES) throw new EventPayloadTooLargeError(event.type, bytes);
      if (batch) {
        batch.push(payload);
        return true;
      }
      // Events published together (a step's outcome and the next step's start, decision 060)
      // or within the window (a run's next steps, decision 081) go in one statement: one round
      // trip and one commit instead of one each.
      const mine = [payload];
      batch = mine;
      const window = new Promise<void>((done) => {
        if (batchWindowMs > 0) {
          const timer = setTimeout(done, batchWindowMs);
          sendNow = () => {
            clearTimeout(timer);
            done();
          };
        } else {
          setImmediate(done);
          sendNow = done;
        }
      });
      publishing = publishing
        .then(() => window)
        .then(() => {
          if (batch === mine) {
            batch = undefined;
            sendNow = undefined;
          }
          return notifyAll(pool, channel, mine);
        })
        .then(
          () => {},
          (error) =>
            logger.warn(
              { err: error, channel, type: event.type, events: mine.length },
              'event publish failed; events dropped',
            ),
        );
      return true;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        closed = true;
        clearTimeout(reconnectTimer);
        sendNow?.();
        await reconnecting;
        await publishing;
        const client = listener;
        listener = undefined;
        await Promise.all([client?.end().catch(() => {}), pool.end().catch(() => {})]);
      })();
      return closing;
    },
  };
}

/**
 * NOTIFYs `payloads` in order, in as few statements as it can. PostgreSQL delivers one of
 * identical payloads notified in one transaction: a repeated payload starts a new statement, so
 * every event published is delivered.
 */
async function notifyAll(pool: pg.Pool, channel: string, payloads: readonly string[]): Promise<void> {
  let group: string[] = [];
  const send = async () => {
    if (group.length === 1) await pool.query('SELECT pg_notify($1, $2)', [channel, group[0]]);
    else if (group.length > 1) {
      await pool.query(
        'SELECT pg_notify($1, e.payload) FROM unnest($2::text[]) WITH ORDINALITY AS e(payload, n) ORDER BY e.n',
        [channel, group],
      );
    }
    group = [];
  };
  for (const payload of payloads) {
    if (group.includes(payload)) await send();
    group.push(payload);
  }
  await send();
}
