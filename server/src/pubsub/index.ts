/**
 * The event bus behind GraphQL subscriptions: every API instance and worker publishes and
 * receives through Redis when REDIS_URL is set, through the central PostgreSQL otherwise.
 */
import { createRedisEventTarget } from '@graphql-yoga/redis-event-target';
import { createPubSub, type PubSub, type PubSubEventTarget } from 'graphql-yoga';
import { Redis } from 'ioredis';
import type { Config } from '../env.js';
import type { Logger } from '../logger.js';
import { createPostgresEventTarget } from './postgres-event-target.js';

/** One provisioning step's progress; the provisioning module refines this shape. */
export interface ProvisioningEventPayload {
  runId: string;
  clinicId: string;
  step: string;
  status: string;
  attempt: number;
  message: string | null;
  at: string;
  durationMs: number | null;
}

/** A clinic database's health as last checked; the provisioning module refines this shape. */
export interface ClinicHealthPayload {
  clinicId: string;
  dbStatus: string;
  [key: string]: unknown;
}

/** Payloads cross process boundaries as JSON: keep them small and JSON-safe. */
export type Topics = {
  provisioning: [event: ProvisioningEventPayload];
  clinicHealth: [health: ClinicHealthPayload];
  /** Sessions of this user ended (sign-out, revoked family, deleted account, password set). */
  sessions: [event: { userId: string }];
};

export interface EventBus {
  pubsub: PubSub<Topics>;
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
    return { pubsub: createPubSub<Topics>({ eventTarget }), close: () => eventTarget.close() };
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
  let closed = false;
  const redisTarget = createRedisEventTarget<CustomEvent>({ publishClient, subscribeClient });
  const eventTarget: PubSubEventTarget<Topics> = {
    addEventListener: redisTarget.addEventListener.bind(redisTarget),
    removeEventListener: redisTarget.removeEventListener.bind(redisTarget),
    // Yoga's Redis target drops the publish promise: a publish rejected during an outage would
    // become an unhandled rejection and end the process. Same wire format, failure logged.
    dispatchEvent(event) {
      if (closed) throw new Error(`event "${event.type}" published after the event bus was closed`);
      const message = event.detail === undefined ? '' : JSON.stringify(event.detail);
      publishClient.publish(event.type, message).catch((error: unknown) => {
        logger.warn({ err: error, type: event.type }, 'event publish failed; event dropped');
      });
      return true;
    },
  };
  return {
    pubsub: createPubSub<Topics>({ eventTarget }),
    async close() {
      closed = true;
      await Promise.all([publishClient.quit(), subscribeClient.quit()].map((quit) => quit.catch(() => {})));
    },
  };
}

function redisClient(url: string, role: string, logger: Logger): Redis {
  const client = new Redis(url, { lazyConnect: true, connectionName: `onramp-events-${role}` });
  // ioredis reconnects (and re-subscribes) by itself; without a listener it prints to stderr.
  client.on('error', (error) => logger.warn({ err: error, role }, 'redis event bus connection error'));
  return client;
}
