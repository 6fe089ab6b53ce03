import type { Client } from 'graphql-ws';
import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { createClinic } from '../../../test/registration-flow.js';
import type { RunScoped } from '../../db/request-scope.js';
import { withClient } from '../../db/sql.js';
import { recordedEvents } from './replay.js';

interface Event {
  runId: string;
  clinicId: string;
  step: string;
  status: string;
  attempt: number;
  at: string;
}

const FIELDS = 'runId clinicId step status attempt at';
/** An event of no run, to see when a subscription is live. */
const PROBE = {
  runId: '00000000-0000-4000-8000-0000000000aa',
  kind: 'REGISTER' as const,
  subject: { kind: 'CLINIC' as const, id: '00000000-0000-4000-8000-0000000000bb', name: null },
  step: 'central_records' as const,
  status: 'STARTED' as const,
  attempt: 1,
  message: null,
  durationMs: null,
};

describe('provisioningProgress replays what a subscriber missed', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { db } = t.app.deps;
  const centralDatabase = new URL(db.centralUrl).pathname.slice(1);

  const provision = (clinicName: string) =>
    createClinic(t, {
      clinicName,
      country: 'FR',
    });

  /** What the records say the run did, as `step:status` in event order (STARTED, then outcome). */
  async function recordedTrail(runId: string): Promise<string[]> {
    const steps = await db.prisma.provisioningStep.findMany({
      where: { runId },
      orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }],
    });
    expect(steps.length).toBeGreaterThan(3);
    return steps.flatMap((step) => [`${step.name}:STARTED`, `${step.name}:${step.status}`]);
  }

  /** A new run and its first two recorded steps. */
  async function firstTwoSteps(clinicName: string) {
    const { runId } = await provision(clinicName);
    const [first, second] = await db.prisma.provisioningStep.findMany({
      where: { runId },
      orderBy: { seq: 'asc' },
    });
    if (!first?.finishedAt || !second) throw new Error('the run recorded fewer than two steps');
    return { runId, first: { ...first, finishedAt: first.finishedAt }, second };
  }

  /** What `recordedEvents` replays of run `runId` since `since`, as `step:status`. */
  async function replayedTrail(runId: string, since: Date): Promise<string[]> {
    const scoped = (<T>(work: (tx: never) => Promise<T>) => work(db.prisma as never)) as unknown as RunScoped;
    const replayed = await recordedEvents(scoped, { since });
    return replayed.filter((event) => event.runId === runId).map((event) => `${event.step}:${event.status}`);
  }

  /** Subscribes and collects every event; resolves once the probe event proves it is live. */
  async function subscribe(client: Client, since?: string) {
    const events: Event[] = [];
    const args = since ? `(since: "${since}")` : '';
    const errors: unknown[] = [];
    client.subscribe<{ provisioningProgress: Event }>(
      { query: `subscription { provisioningProgress${args} { ${FIELDS} } }` },
      {
        next: ({ data, errors: failed }) => {
          if (failed) errors.push(...failed);
          if (data) events.push(data.provisioningProgress);
        },
        error: (error) => errors.push(error),
        complete: () => {},
      },
    );
    await expect
      .poll(
        () => {
          expect(errors).toEqual([]);
          t.app.deps.events.pubsub.publish('provisioning', { ...PROBE, at: new Date() });
          return events.some((event) => event.runId === PROBE.runId);
        },
        { timeout: 10_000, interval: 50 },
      )
      .toBe(true);
    return {
      events,
      trail: (runId: string) =>
        events.filter((event) => event.runId === runId).map((event) => `${event.step}:${event.status}`),
    };
  }

  it('replays, from the run and step records, the events between a disconnect and a resubscription with `since`', async () => {
    const first = t.ws({ connectionParams: await t.superAdmin() });
    const before = await subscribe(first);
    const seen = await provision('Seen live');
    await expect
      .poll(() => before.trail(seen.runId), { timeout: 10_000 })
      .toEqual(await recordedTrail(seen.runId));
    const last = before.events.at(-1)?.at;
    await first.dispose();

    // Nobody listens while this clinic is provisioned.
    const missed = await provision('Missed while away');
    const again = t.ws({ connectionParams: await t.superAdmin() });
    const after = await subscribe(again, last);
    await expect
      .poll(() => after.trail(missed.runId), { timeout: 10_000 })
      .toEqual(await recordedTrail(missed.runId));
    // Nothing is delivered twice within the subscription.
    const keys = after.events.map((event) => `${event.runId}:${event.step}:${event.attempt}:${event.status}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("replays a step that started and ended in the millisecond its predecessor ended in after it, whatever the rows' order", async () => {
    const { runId, first, second: quick } = await firstTwoSteps('Quick steps');
    // The second step within the first's last millisecond; its row sorts first among equals.
    await db.prisma.$executeRaw`
      UPDATE provisioning_steps SET started_at = ${first.finishedAt}, finished_at = ${first.finishedAt},
             id = CASE WHEN id = ${quick.id}::uuid THEN '00000000-0000-4000-8000-000000000001'::uuid
                       ELSE 'ffffffff-ffff-4fff-8fff-ffffffffffff'::uuid END
       WHERE id IN (${first.id}::uuid, ${quick.id}::uuid)`;
    await db.prisma.$executeRaw`
      UPDATE provisioning_steps SET started_at = ${first.startedAt}
       WHERE id = 'ffffffff-ffff-4fff-8fff-ffffffffffff'::uuid`;
    expect(await replayedTrail(runId, first.startedAt)).toEqual(await recordedTrail(runId));
  });

  it("replays two steps that started and ended in one millisecond in run order, whatever the rows' order", async () => {
    const { runId, first, second } = await firstTwoSteps('Quicker steps');
    // Both steps within one millisecond; the later step's row sorts first among equals.
    await db.prisma.$executeRaw`
      UPDATE provisioning_steps SET started_at = ${first.finishedAt}, finished_at = ${first.finishedAt},
             id = CASE WHEN id = ${second.id}::uuid THEN '00000000-0000-4000-8000-000000000002'::uuid
                       ELSE 'ffffffff-ffff-4fff-8fff-fffffffffffe'::uuid END
       WHERE id IN (${first.id}::uuid, ${second.id}::uuid)`;
    const trail = await replayedTrail(runId, first.startedAt);
    expect(trail.slice(0, 4)).toEqual([
      `${first.name}:STARTED`,
      `${first.name}:${first.status}`,
      `${second.name}:STARTED`,
      `${second.name}:${second.status}`,
    ]);
    expect(trail).toEqual(await recordedTrail(runId));
  });

  it('delivers the events published while this instance was reconnecting its event bus', async () => {
    const client = t.ws({ connectionParams: await t.superAdmin() });
    const live = await subscribe(client);
    const generation = t.app.deps.events.generation();
    // Cut the bus's LISTEN connection whenever it is established, so notifications sent during
    // the run mostly find no listener (what a central database restart does, repeatedly).
    let cutting = true;
    const cuts = (async () => {
      let count = 0;
      while (cutting) {
        count += await withClient(inject('pgAdminUrl'), async (admin) => {
          const { rowCount } = await admin.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND application_name = 'onramp-events' AND query LIKE 'LISTEN%'`,
            [centralDatabase],
          );
          return rowCount ?? 0;
        });
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return count;
    })();
    await expect.poll(() => t.app.deps.events.generation(), { timeout: 10_000 }).toBeGreaterThan(generation);
    const run = await provision('Provisioned during the gap');
    cutting = false;
    expect(await cuts).toBeGreaterThan(0);
    await expect.poll(() => t.app.deps.events.connected(), { timeout: 15_000 }).toBe(true);
    // Live and replayed events interleave: compare what arrived, not in which order.
    const expected = (await recordedTrail(run.runId)).sort();
    await expect.poll(() => live.trail(run.runId).sort(), { timeout: 10_000 }).toEqual(expected);
  });
});
