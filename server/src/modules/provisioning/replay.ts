/**
 * `provisioningProgress` without silent gaps. The event bus delivers at most once: a subscriber
 * that was away, or an instance whose bus was reconnecting, misses what was sent meanwhile. The
 * run and step records hold every outcome, so a subscription replays from them what it missed:
 * since the client's cursor (`since`, the `at` of the last event it saw) when it subscribes, and
 * since its own last event whenever this instance's bus comes back after a loss.
 *
 * What the records can give: each step's start and its latest outcome (a step rolled back shows
 * STARTED then ROLLED_BACK, not the SUCCEEDED in between), and nothing of a step still running
 * (its STARTED is written with its outcome, saga.ts). Consumers fold events by step (the
 * console's feed does), so a replay that repeats what was seen changes nothing.
 */
import type { RunScoped } from '../../db/request-scope.js';
import type { Logger } from '../../logger.js';
import type { EventBus } from '../../pubsub/index.js';
import { type ProvisioningEvent, subjectOf } from './engine/events.js';
import type { ProvisioningStepName } from './step-names.js';

/**
 * Replays reach this far before the cursor: events of several instances come in commit order,
 * not in the order of their clocks, so one slightly older than the last one seen can still be due.
 */
export const REPLAY_MARGIN_MS = 5_000;

/** The newest events a replay returns at most (a cursor from last month replays no history). */
export const REPLAY_LIMIT = 1_000;

const key = (event: ProvisioningEvent) => `${event.runId}:${event.step}:${event.attempt}:${event.status}`;
const atMs = (event: ProvisioningEvent) => event.at.getTime();

/** The events the records hold at or after `since`, oldest first. */
export async function recordedEvents(
  scoped: RunScoped,
  filter: { since: Date; clinicId?: string },
): Promise<ProvisioningEvent[]> {
  const { since, clinicId } = filter;
  const steps = await scoped((tx) =>
    tx.provisioningStep.findMany({
      where: {
        OR: [{ startedAt: { gte: since } }, { finishedAt: { gte: since } }],
        ...(clinicId ? { run: { clinicId } } : {}),
      },
      include: {
        run: {
          select: { subjectKind: true, clinicId: true, onboardingId: true, kind: true, subjectName: true },
        },
      },
      orderBy: [{ finishedAt: 'desc' }, { seq: 'desc' }],
      take: REPLAY_LIMIT,
    }),
  );
  const events: ProvisioningEvent[] = [];
  /** The order each event's step was recorded in: orders events of one millisecond (see below). */
  const recorded = new Map<ProvisioningEvent, bigint>();
  for (const step of steps) {
    const common = {
      runId: step.runId,
      kind: step.run.kind,
      subject: subjectOf(step.run),
      // Written by the runner from a ProvisioningStepName.
      step: step.name as ProvisioningStepName,
      attempt: step.attempt,
    };
    // Newest first here, reversed below.
    const first = events.length;
    if (step.status !== 'STARTED' && step.finishedAt && step.finishedAt >= since) {
      events.push({
        ...common,
        status: step.status,
        message: step.error,
        at: step.finishedAt,
        durationMs: step.durationMs,
        // Which recorded step ended its run is not kept; the run record says how it ended.
        runStatus: null,
      });
    }
    if (step.startedAt >= since) {
      events.push({
        ...common,
        status: 'STARTED',
        message: null,
        at: step.startedAt,
        durationMs: null,
        runStatus: null,
      });
    }
    for (const event of events.slice(first)) recorded.set(event, step.seq);
  }
  // Records carry milliseconds, and a quick step starts and ends in the one its predecessor ended
  // in: within a millisecond, the step recorded first comes first (ids are random, no help), and,
  // the sort being stable, a step's STARTED stays before its outcome.
  const order = (event: ProvisioningEvent) => recorded.get(event) ?? 0n;
  return events.reverse().sort((a, b) => atMs(a) - atMs(b) || Number(order(a) - order(b)));
}

export interface ReplayingOptions {
  /** The bus's events for this subscription, already filtered. */
  live: AsyncIterable<ProvisioningEvent>;
  /** The client's cursor; without it, nothing before the subscription is replayed. */
  since: Date | undefined;
  /** Reads the recorded events at or after a time (`recordedEvents`, with the filter). */
  load(since: Date): Promise<ProvisioningEvent[]>;
  bus: Pick<EventBus, 'onReconnected'>;
  logger: Logger;
}

/**
 * The live events, preceded by a replay from `since` and interrupted by one each time the bus
 * reconnects. Events already delivered are not delivered again. A plain iterator, not an async
 * generator: a generator's return() would wait for the next event (see session-watch.ts).
 */
export function replaying(options: ReplayingOptions): AsyncIterableIterator<ProvisioningEvent> {
  const { live, load, bus, logger } = options;
  const iterator = live[Symbol.asyncIterator]();
  // Listening starts with the first next(), before the first replay reads the records: an event
  // committed in between comes both ways, and the second is dropped as already delivered.
  let pendingLive: Promise<IteratorResult<ProvisioningEvent>> | undefined = iterator.next();
  let cursor = (options.since ?? new Date()).getTime();
  let replayDue = options.since !== undefined;
  let queue: ProvisioningEvent[] = [];
  /** Keys of delivered events not older than the replay window, with their time. */
  const delivered = new Map<string, number>();
  let wake: () => void = () => {};
  let woken = new Promise<'reconnected'>((resolve) => {
    wake = () => resolve('reconnected');
  });
  const stopListening = bus.onReconnected(() => {
    replayDue = true;
    wake();
  });
  let finished = false;
  const done = { done: true, value: undefined } as const;

  const finish = async () => {
    if (finished) return;
    finished = true;
    stopListening();
    wake();
    await iterator.return?.();
  };

  const deliver = (event: ProvisioningEvent): IteratorResult<ProvisioningEvent> => {
    const at = atMs(event);
    delivered.set(key(event), at);
    cursor = Math.max(cursor, at);
    if (delivered.size > REPLAY_LIMIT) {
      for (const [seen, time] of delivered) if (time < cursor - 2 * REPLAY_MARGIN_MS) delivered.delete(seen);
    }
    return { done: false, value: event };
  };

  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      for (;;) {
        if (finished) return done;
        if (replayDue) {
          replayDue = false;
          try {
            const missed = await load(new Date(cursor - REPLAY_MARGIN_MS));
            queue = [...queue, ...missed.filter((event) => !delivered.has(key(event)))];
          } catch (error) {
            // The subscription goes on live; the gap is at least on record in the log.
            logger.warn({ err: error }, 'provisioning events not replayed; the subscriber may miss some');
          }
          continue;
        }
        const queued = queue.shift();
        if (queued) {
          if (delivered.has(key(queued))) continue;
          return deliver(queued);
        }
        pendingLive ??= iterator.next();
        const outcome = await Promise.race([pendingLive, woken]);
        if (outcome === 'reconnected') {
          woken = new Promise((resolve) => {
            wake = () => resolve('reconnected');
          });
          continue;
        }
        pendingLive = undefined;
        if (outcome.done) {
          await finish();
          return done;
        }
        if (delivered.has(key(outcome.value))) continue;
        return deliver(outcome.value);
      }
    },
    async return() {
      await finish();
      return done;
    },
    async throw(error: unknown) {
      await finish();
      throw error;
    },
  };
}
