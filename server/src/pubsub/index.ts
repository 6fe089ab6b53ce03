/**
 * The event bus behind GraphQL subscriptions: every API instance and worker publishes and
 * receives through Redis when REDIS_URL is set, through the central PostgreSQL otherwise.
 */
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub, type PubSubEventTarget } from 'graphql-yoga';
import { Redis } from 'ioredis';
import type { Config } from '../env.js';
import type { Logger } from '../logger.js';
import type { ProvisioningEvent } from '../modules/provisioning/index.js';
import { sharedBarrier } from './barrier.js';
import { createPostgresEventTarget } from './postgres-event-target.js';
import { wire } from './wire.js';

/** One provisioning step's progress: the engine's event itself (its `at` stays a Date, wire.ts). */
export type ProvisioningEventPayload = ProvisioningEvent;

/** A clinic database's health as last checked; the provisioning module refines this shape. */
export interface ClinicHealthPayload {
  clinicId: string;
  dbStatus: string;
  [key: string]: unknown;
}

/** Payloads cross process boundaries as JSON (and Dates, wire.ts): keep them small. */
export type Topics = {
  provisioning: [event: ProvisioningEventPayload];
  clinicHealth: [health: ClinicHealthPayload];
  /** A rollout changed (status, a clinic's state): rolloutProgress reads it again. */
  rollouts: [event: { rolloutId: string }];
  /** Sessions of this user ended (sign-out, revoked family, deleted account, password set). */
  sessions: [event: { userId: string }];
  /**
   * A clinic database server was held or its hold ended (docs/decisions/090, 094). Sent only by
   * the central database's triggers (migration 20261218100000_database_server_held_notify), so a
   * shell's accept and another instance's start count too.
   */
  databaseServers: [event: { serverId: string }];
};

/** Topics only the central database's triggers send: heard on its channel even with Redis. */
const DATABASE_TOPICS: ReadonlySet<string> = new Set(['sessions', 'databaseServers']);

export interface EventBus {
  pubsub: PubSub<Topics>;
  /** Whether this process is subscribed right now (part of /readyz). */
  connected(): boolean;
  /**
   * Counts the subscription's losses. Events sent while it was down never arrive, so anything
   * learned from events (a cache, a live feed) is stale once this changes.
   */
  generation(): number;
  /** Calls `listener` each time the subscription is back after a loss; returns the unsubscribe. */
  onReconnected(listener: () => void): () => void;
  /**
   * Resolves true once every event the broker had delivered before the call (every event whose
   * publisher saw {@link published} resolve) has reached this process's subscribers, their
   * handlers run; false when the subscription is down, so such events may never arrive.
   */
  sync(): Promise<boolean>;
  /** Resolves once every event this process published so far is with the broker (or failed, logged). */
  published(): Promise<void>;
  /** Ends the bus's connections; publishing afterwards is an error. */
  close(): Promise<void>;
}

export interface CreateEventBusOptions {
  config: Pick<Config, 'redisUrl'>;
  /** The central database, used for LISTEN/NOTIFY when no Redis is configured. */
  connectionString: string;
  logger: Logger;
}

export async function createEventBus({
  config,
  connectionString,
  logger,
}: CreateEventBusOptions): Promise<EventBus> {
  if (!config.redisUrl) {
    const eventTarget = await createPostgresEventTarget({ connectionString, logger });
    return {
      pubsub: createPubSub<Topics>({ eventTarget }),
      connected: eventTarget.connected,
      generation: eventTarget.generation,
      onReconnected: eventTarget.onReconnected,
      sync: () => eventTarget.sync().then(handled),
      published: eventTarget.published,
      close: () => eventTarget.close(),
    };
  }

  // A connection in subscriber mode cannot publish, hence two.
  const publishClient = redisClient(config.redisUrl, 'publisher', logger);
  const subscribeClient = redisClient(config.redisUrl, 'subscriber', logger);
  try {
    await Promise.all([publishClient.connect(), subscribeClient.connect()]);
  } catch (error) {
    // A failed connect() keeps retrying in the background unless told to stop.
    publishClient.disconnect();
    subscribeClient.disconnect();
    throw error;
  }
  // The central database's triggers announce session ends and server holds made by any path, an
  // operator's SQL included (migrations 20261210500100_session_end_notify,
  // 20261218100000_database_server_held_notify): heard here too, not only on PostgreSQL's bus.
  let database: Awaited<ReturnType<typeof createPostgresEventTarget>>;
  try {
    database = await createPostgresEventTarget({
      connectionString,
      logger,
      applicationName: 'onramp-events-database',
    });
  } catch (error) {
    publishClient.disconnect();
    subscribeClient.disconnect();
    throw error;
  }
  let closed = false;
  // ioredis resubscribes by itself after a reconnection; what was published meanwhile is gone.
  let up = true;
  let losses = 0;
  const reconnected = new Set<() => void>();
  subscribeClient.on('close', () => {
    if (!up) return;
    up = false;
    losses += 1;
  });
  subscribeClient.on('ready', () => {
    if (up) return;
    up = true;
    for (const callback of reconnected) {
      try {
        callback();
      } catch (error) {
        logger.warn({ err: error }, 'event reconnection listener failed');
      }
    }
  });
  const redisTarget = createRedisEventTarget<CustomEvent>({
    publishClient,
    subscribeClient,
    serializer: wire,
  });
  let lastPublish: Promise<void> = Promise.resolve();
  // Redis writes a message to its subscribers' connections as it runs the PUBLISH, so a PING on
  // the subscriber connection answers after every message published before it.
  const redisBarrier = sharedBarrier(() => {
    if (!(up && subscribeClient.status === 'ready')) return Promise.resolve(false);
    const generation = losses;
    return subscribeClient.ping().then(
      () => up && losses === generation,
      () => false,
    );
  });
  const eventTarget: PubSubEventTarget<Topics> = {
    addEventListener(type, callback, options) {
      redisTarget.addEventListener(type, callback, options);
      if (DATABASE_TOPICS.has(type)) database.addEventListener(type, callback, options);
    },
    removeEventListener(type, callback, options) {
      redisTarget.removeEventListener(type, callback, options);
      if (DATABASE_TOPICS.has(type)) database.removeEventListener(type, callback, options);
    },
    // Yoga's Redis target drops the publish promise: a publish rejected during an outage would
    // become an unhandled rejection and end the process. Same wire format, failure logged.
    dispatchEvent(event) {
      if (closed) throw new Error(`event "${event.type}" published after the event bus was closed`);
      const message = event.detail === undefined ? '' : wire.stringify(event.detail);
      const sent = publishClient.publish(event.type, message).then(
        () => {},
        (error: unknown) => {
          logger.warn({ err: error, type: event.type }, 'event publish failed; event dropped');
        },
      );
      // ioredis sends in order on one connection: the last publish settles after the others.
      lastPublish = sent;
      return true;
    },
  };
  return {
    pubsub: createPubSub<Topics>({ eventTarget }),
    connected: () => up && subscribeClient.status === 'ready' && database.connected(),
    generation: () => losses + database.generation(),
    onReconnected(callback) {
      reconnected.add(callback);
      const stop = database.onReconnected(callback);
      return () => {
        reconnected.delete(callback);
        stop();
      };
    },
    sync: () => Promise.all([redisBarrier(), database.sync()]).then(([redis, sql]) => handled(redis && sql)),
    published: () => lastPublish,
    async close() {
      closed = true;
      await Promise.all([
        ...[publishClient.quit(), subscribeClient.quit()].map((quit) => quit.catch(() => {})),
        database.close(),
      ]);
    },
  };
}

/**
 * Passes `delivered` on once the handlers of what was delivered have run: events reach
 * subscribers' iterators synchronously, their loops a few promise turns later.
 */
function handled(delivered: boolean): Promise<boolean> {
  return new Promise((resolve) => setImmediate(() => resolve(delivered)));
}

function redisClient(url: string, role: string, logger: Logger): Redis {
  const client = new Redis(url, { lazyConnect: true, connectionName: `onramp-events-${role}` });
  // ioredis reconnects (and re-subscribes) by itself; without a listener it prints to stderr.
  client.on('error', (error) => logger.warn({ err: error, role }, 'redis event bus connection error'));
  return client;
}
