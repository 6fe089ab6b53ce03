import { randomBytes } from 'node:crypto';
import { createPubSub } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startRedis } from '../../test/harness.js';
import { countStatements, describeTally } from '../../test/statements.js';
import { ensureDatabase } from '../db/database.js';
import { databaseUrl, quoteIdent, withClient } from '../db/sql.js';
import { createLogger } from '../logger.js';
import type { ProvisioningStepName } from '../modules/provisioning/step-names.js';
import { createEventBus, type EventBus, type ProvisioningEventPayload, type Topics } from './index.js';
import { createPostgresEventTarget, EventPayloadTooLargeError } from './postgres-event-target.js';
import { stringify } from './wire.js';

const logger = createLogger({ env: 'test', logLevel: 'silent' });
const admin = inject('pgAdminUrl');
const database = `pubsub_${randomBytes(6).toString('hex')}`;
const url = databaseUrl(admin, database);

beforeAll(() => ensureDatabase(admin, database));
afterAll(() =>
  withClient(admin, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`)),
);

/** The engine's event, as published: its `at` is a Date, and arrives as one (wire.ts). */
function step(runId: string, step: string): ProvisioningEventPayload {
  return {
    runId,
    kind: 'REGISTER',
    subject: { kind: 'CLINIC', id: 'clinic-1', name: 'Clinique du Lac' },
    step: step as ProvisioningStepName,
    status: 'SUCCEEDED',
    attempt: 1,
    message: null,
    at: new Date(1_765_000_000_123),
    durationMs: 12,
  };
}

/**
 * Reads a `pubsub.subscribe(topic)` iterator. Yoga attaches its listener on the iterator's
 * first `next()`, so that call happens here, before anything is published.
 */
function reader<T>(subscription: AsyncIterable<T>) {
  const iterator = subscription[Symbol.asyncIterator]();
  let pending = iterator.next();
  const next = async (timeoutMs: number) => {
    const result = await Promise.race([pending, sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (result === 'timeout') return result;
    pending = iterator.next();
    return result.value;
  };
  return {
    async take(n: number, timeoutMs = 5_000) {
      const values = [];
      for (let i = 0; i < n; i++) {
        const value = await next(timeoutMs);
        if (value === 'timeout') throw new Error(`received ${i} of ${n} events`);
        values.push(value);
      }
      return values;
    },
    /** Resolves true when nothing more arrives within `ms`. */
    async quietFor(ms: number) {
      return (await next(ms)) === 'timeout';
    },
    stop: () => iterator.return?.(),
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Backends of our test database whose application_name starts with `prefix`. */
async function backends(prefix: string): Promise<{ pid: number; application_name: string; query: string }[]> {
  return withClient(admin, async (client) => {
    const { rows } = await client.query(
      `SELECT pid, application_name, query FROM pg_stat_activity
        WHERE datname = $1 AND starts_with(application_name, $2) ORDER BY pid`,
      [database, prefix],
    );
    return rows;
  });
}

describe('the event bus on PostgreSQL LISTEN/NOTIFY', () => {
  let a: EventBus;
  let b: EventBus;
  beforeAll(async () => {
    // Two buses on one database stand in for two processes.
    a = await createEventBus({ config: { redisUrl: undefined }, connectionString: url, logger });
    b = await createEventBus({ config: { redisUrl: undefined }, connectionString: url, logger });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('delivers an event published on one bus to subscribers on both, once each, in order', async () => {
    const onA = reader(a.pubsub.subscribe('provisioning'));
    const onB = reader(b.pubsub.subscribe('provisioning'));
    const sent = ['clone', 'verify', 'seed', 'dns', 'email'].map((name) => step('run-1', name));
    for (const event of sent) a.pubsub.publish('provisioning', event);

    expect(await onA.take(sent.length)).toEqual(sent);
    expect(await onB.take(sent.length)).toEqual(sent);
    expect(await onA.quietFor(300)).toBe(true);
    expect(await onB.quietFor(0)).toBe(true);
    await Promise.all([onA.stop(), onB.stop()]);
  });

  it('sends the events published together in one statement, a repeated one in the next (decision 060)', async () => {
    const counter = countStatements(database);
    try {
      const onB = reader(b.pubsub.subscribe('provisioning'));
      const together = ['clone', 'verify', 'seed'].map((name) => step('run-batch', name));
      const first = await counter.count(async () => {
        for (const event of together) a.pubsub.publish('provisioning', event);
        return onB.take(together.length);
      });
      expect(first.value).toEqual(together);
      expect(first.tally.publishes, describeTally(first.tally)).toBe(1);

      const twice = step('run-batch', 'dns');
      const second = await counter.count(async () => {
        for (const event of [twice, twice]) a.pubsub.publish('provisioning', event);
        return onB.take(2);
      });
      expect(second.value).toEqual([twice, twice]);
      expect(second.tally.publishes, describeTally(second.tally)).toBe(2);
      await onB.stop();
    } finally {
      counter.restore();
    }
  });

  it('delivers every one of identical events published together (one NOTIFY would carry one)', async () => {
    const onB = reader(b.pubsub.subscribe('provisioning'));
    const twice = step('run-dup', 'clone');
    const sent = [twice, twice, step('run-dup', 'verify'), twice];
    for (const event of sent) a.pubsub.publish('provisioning', event);

    expect(await onB.take(sent.length)).toEqual(sent);
    expect(await onB.quietFor(300)).toBe(true);
    await onB.stop();
  });

  it('delivers to subscribers of the published topic only', async () => {
    const health = reader(b.pubsub.subscribe('clinicHealth'));
    const provisioning = reader(b.pubsub.subscribe('provisioning'));
    a.pubsub.publish('clinicHealth', { clinicId: 'clinic-1', dbStatus: 'UNREACHABLE', latencyMs: null });
    a.pubsub.publish('provisioning', step('run-2', 'clone'));
    a.pubsub.publish('clinicHealth', { clinicId: 'clinic-1', dbStatus: 'OK' });

    expect(await health.take(2)).toEqual([
      { clinicId: 'clinic-1', dbStatus: 'UNREACHABLE', latencyMs: null },
      { clinicId: 'clinic-1', dbStatus: 'OK' },
    ]);
    expect(await provisioning.take(1)).toEqual([step('run-2', 'clone')]);
    expect(await health.quietFor(300)).toBe(true);
    await Promise.all([health.stop(), provisioning.stop()]);
  });

  it('rejects a payload PostgreSQL could not carry, counting bytes rather than characters', async () => {
    const onB = reader(b.pubsub.subscribe('provisioning'));
    // 4,000 two-byte characters: short as a string, 8,000 bytes on the wire.
    const huge = { ...step('run-3', 'seed'), message: 'é'.repeat(4_000) };
    expect(() => a.pubsub.publish('provisioning', huge)).toThrow(EventPayloadTooLargeError);
    expect(() => a.pubsub.publish('provisioning', huge)).toThrow(/at most 7999 bytes/);

    // The largest payload PostgreSQL takes: exactly 7999 bytes once wrapped with its topic.
    const base = Buffer.byteLength(stringify({ type: 'provisioning', detail: step('run-3', 'seed') }));
    const fits = { ...step('run-3', 'seed'), message: 'x'.repeat(7_999 - base + 2) };
    expect(Buffer.byteLength(stringify({ type: 'provisioning', detail: fits }))).toBe(7_999);
    a.pubsub.publish('provisioning', fits);
    expect(await onB.take(1)).toEqual([fits]);
    expect(await onB.quietFor(300)).toBe(true);
    await onB.stop();
  });
});

describe('the PostgreSQL event target', () => {
  it('reconnects after its listening backend is terminated and leaves no backend once closed', async () => {
    const name = `onramp-events-test-${randomBytes(4).toString('hex')}`;
    const listening = await createPostgresEventTarget({
      connectionString: url,
      logger,
      applicationName: name,
      reconnectInitialDelayMs: 20,
    });
    const publishing = await createPostgresEventTarget({
      connectionString: url,
      logger,
      applicationName: `${name}-b`,
    });
    const bus = { pubsub: createPubSub<Topics>({ eventTarget: listening }), close: () => listening.close() };
    const other = {
      pubsub: createPubSub<Topics>({ eventTarget: publishing }),
      close: () => publishing.close(),
    };
    try {
      const [before] = (await backends(name)).filter((backend) => backend.application_name === name);
      expect(before?.query).toMatch(/^LISTEN/i);
      const killed = await withClient(admin, async (client) => {
        const { rows } = await client.query(
          'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE pid = $1',
          [before!.pid],
        );
        return rows[0].ok;
      });
      expect(killed).toBe(true);

      const after = await waitFor('a new LISTEN backend', async () =>
        (await backends(name)).find(
          (backend) =>
            backend.application_name === name &&
            backend.pid !== before!.pid &&
            /^LISTEN/i.test(backend.query),
        ),
      );
      expect(after.pid).not.toBe(before!.pid);

      const received = reader(bus.pubsub.subscribe('provisioning'));
      other.pubsub.publish('provisioning', step('run-4', 'from-other'));
      bus.pubsub.publish('provisioning', step('run-4', 'from-self'));
      // Two publishers on two connections: PostgreSQL orders them by commit, not by call.
      const steps = (await received.take(2)).map((event) => event.step).sort();
      expect(steps).toEqual(['from-other', 'from-self']);
      await received.stop();
    } finally {
      await bus.close();
      await other.close();
    }

    // A backend may outlive its closed socket by a moment; it must go, not linger.
    await waitFor('the backends to go', async () => ((await backends(name)).length === 0 ? true : undefined));
    expect(() => bus.pubsub.publish('provisioning', step('run-4', 'late'))).toThrow(/closed/);
  });

  it('gathers the events of its window in one statement, and sends them at once when asked (decision 081)', async () => {
    const target = (batchWindowMs: number) =>
      createPostgresEventTarget({ connectionString: url, logger, batchWindowMs });
    const gathering = await target(1_000);
    const holding = await target(60_000);
    const listening = await target(0);
    const counter = countStatements(database);
    try {
      const onListener = reader(createPubSub<Topics>({ eventTarget: listening }).subscribe('provisioning'));
      // Published 10 ms apart, within one window: one statement, in order.
      const spread = ['clone', 'verify', 'seed'].map((name) => step('run-window', name));
      const gathered = await counter.count(async () => {
        const pubsub = createPubSub<Topics>({ eventTarget: gathering });
        for (const event of spread) {
          pubsub.publish('provisioning', event);
          await sleep(10);
        }
        return onListener.take(spread.length);
      });
      expect(gathered.value).toEqual(spread);
      expect(gathered.tally.publishes, describeTally(gathered.tally)).toBe(1);

      // A minute's window: published() and close() do not wait for it (a session's end is
      // published and awaited before its sign-out answers).
      const pubsub = createPubSub<Topics>({ eventTarget: holding });
      const started = Date.now();
      pubsub.publish('provisioning', step('run-window', 'dns'));
      await holding.published();
      expect((await onListener.take(1, 10_000)).map((event) => event.step)).toEqual(['dns']);
      pubsub.publish('provisioning', step('run-window', 'ssl'));
      await holding.close();
      expect((await onListener.take(1, 10_000)).map((event) => event.step)).toEqual(['ssl']);
      expect(Date.now() - started).toBeLessThan(30_000);
      await onListener.stop();
    } finally {
      counter.restore();
      await Promise.all([gathering.close(), holding.close(), listening.close()]);
    }
  });

  it('fails to start when its database does not exist', async () => {
    const missing = databaseUrl(admin, `missing_${randomBytes(4).toString('hex')}`);
    await expect(createPostgresEventTarget({ connectionString: missing, logger })).rejects.toThrow(
      /does not exist/,
    );
  });
});

describe('the event bus on Redis', async () => {
  const { url: redisUrl } = await startRedis();
  const buses: EventBus[] = [];
  afterAll(() => Promise.all(buses.map((bus) => bus.close())));

  it('delivers an event published on one bus to subscribers on both, once each, in order', async () => {
    for (let i = 0; i < 2; i++) {
      buses.push(await createEventBus({ config: { redisUrl }, connectionString: url, logger }));
    }
    const [a, b] = buses as [EventBus, EventBus];
    const onA = reader(a.pubsub.subscribe('provisioning'));
    const onB = reader(b.pubsub.subscribe('provisioning'));
    const health = reader(b.pubsub.subscribe('clinicHealth'));
    // SUBSCRIBE is asynchronous: publish only once Redis counts both subscribers.
    const observer = new Redis(redisUrl);
    try {
      await waitFor('both subscriptions', async () => {
        const [, count] = (await observer.pubsub('NUMSUB', 'provisioning')) as [string, number];
        return count === 2 ? true : undefined;
      });
    } finally {
      observer.disconnect();
    }

    const sent = ['clone', 'verify', 'seed'].map((name) => step('run-5', name));
    for (const event of sent) a.pubsub.publish('provisioning', event);
    expect(await onA.take(sent.length)).toEqual(sent);
    expect(await onB.take(sent.length)).toEqual(sent);
    expect(await onA.quietFor(300)).toBe(true);
    expect(await onB.quietFor(0)).toBe(true);
    expect(await health.quietFor(0)).toBe(true);
    await Promise.all([onA.stop(), onB.stop(), health.stop()]);
  });

  it('hears a clinic server hold, as the central database announces it, on its own channel', async () => {
    const bus = await createEventBus({ config: { redisUrl }, connectionString: url, logger });
    buses.push(bus);
    const held = reader(bus.pubsub.subscribe('databaseServers'));
    // What the trigger of migration 20261218100000_database_server_held_notify sends at commit.
    const detail = { serverId: '00000000-0000-4000-8000-000000000094' };
    await withClient(url, (client) =>
      client.query("SELECT pg_notify('onramp_events', $1)", [
        JSON.stringify({ type: 'databaseServers', detail }),
      ]),
    );
    expect(await held.take(1)).toEqual([detail]);
    expect(await held.quietFor(300)).toBe(true);
    await held.stop();
  });
});
