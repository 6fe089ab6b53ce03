/**
 * A clinic database server whose host vanishes (no FIN, no RST) in the middle of a clinic's
 * upgrade, the UPGRADE run a rollout drives: the migration's one-off session (`withClient`) has
 * no statement timeout, since a big clinic's migration may run for long, but its liveness probes
 * go unanswered, so the run ends within a bounded time as FAILED, with a typed error in its step's
 * record and nothing half-applied (docs/decisions/097). And a one-off session whose next statement
 * is sent after the vanish, which the client's keepalive does not cover, ends as soon. Needs root
 * and `ip netns`: skipped otherwise.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { netnsUnavailable, serverBehindNamespace, sleep, until } from '../../../test/netns.js';
import { createClinic } from '../../../test/registration-flow.js';
import { runUpgrade } from '../../../test/upgrade.js';
import { databaseUrl, LIVENESS, SessionLostError, withClient } from '../../db/sql.js';

const skipped = netnsUnavailable();
if (skipped) console.warn(`upgrade-vanish.test.ts skipped: ${skipped}`);
const title = 'a clinic database server that vanishes in the middle of an upgrade';

/** What the run may take after the vanish: at most one probe period, then two unanswered probes. */
const BOUND_MS = LIVENESS.everyMs + LIVENESS.misses * (LIVENESS.everyMs + LIVENESS.answerMs) + 5_000;
/** How long the test waits for it at most: past the bound, short of TCP's 15 minutes. */
const CAP_MS = 60_000;

describe.skipIf(skipped !== null)(skipped ? `${title} (skipped: ${skipped})` : title, () => {
  it('fails the run within the bound, typed and recorded, with nothing of the migration applied', async () => {
    const { netns, server, url } = await serverBehindNamespace();
    const t = await startTestApp({
      CLINIC_DATABASE_SERVERS: url,
      CLINIC_POOL_SIZE: '0',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    });
    onTestFinished(() => t.app.stop());
    onTestFinished(() => netns.revive());
    const { db } = t.app.deps;
    const { clinicId } = await createClinic(t);
    const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
    const clinicServer = db.servers.byId.get(clinic.databaseServerId);
    if (!clinicServer) throw new Error('the clinic server is not attached');

    // A long migration: a statement longer than the liveness bound on a live server, then a
    // table. Its backend finds out it is alone once the statement ends (PostgreSQL does not read
    // the socket meanwhile), so not much longer, for the test's look at what it left.
    const ran = runUpgrade(
      t.app,
      clinicId,
      clinicServer,
      '20991231000000_slow',
      'SELECT pg_sleep(40); CREATE TABLE "vanish_invoices" ("id" INTEGER PRIMARY KEY);',
    );

    // Seen over the server's own socket, which the vanish does not cut.
    const migrating = (state?: string) =>
      withClient(server.url, async (client) => {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE query LIKE 'SELECT pg_sleep(40)%' AND ($1::text IS NULL OR state = $1)`,
          [state ?? null],
        );
        return rows[0]?.n ?? 0;
      });
    await until(
      'the migration under way',
      () => migrating('active'),
      (n) => n === 1,
      20_000,
    );
    netns.vanish();
    const vanishedAt = Date.now();
    const result = await Promise.race([ran, sleep(CAP_MS).then(() => 'no answer' as const)]);
    const ms = Date.now() - vanishedAt;
    console.info(`upgrade ended ${ms} ms after the clinic server vanished`);
    expect(result, `no end ${CAP_MS} ms after the vanish`).not.toBe('no answer');
    expect(ms).toBeLessThan(BOUND_MS);
    if (result === 'no answer' || result.ok) throw new Error('the upgrade did not fail');
    expect(result.failedStep).toBe('migrate_database');
    expect(result.error).toBeInstanceOf(SessionLostError);
    expect(result.error.message).toMatch(/answered none of 2 liveness probes/);

    // Recorded: the run ended (nothing before the step to undo), its step's record says why.
    expect(await db.prisma.provisioningRun.findUnique({ where: { id: result.runId } })).toMatchObject({
      status: 'ROLLED_BACK',
    });
    const step = await db.prisma.provisioningStep.findFirst({
      where: { runId: result.runId, name: 'migrate_database' },
    });
    expect(step).toMatchObject({ status: 'FAILED' });
    expect(step?.error).toMatch(/abandoned/);
    // Nothing half-recorded: the clinic stays on its version.
    expect((await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } })).schemaVersion).toBe(
      clinic.schemaVersion,
    );

    // The host back: its transaction never committed; the migration is not applied, not even in part.
    netns.revive();
    const inClinic = databaseUrl(server.url, clinic.databaseName);
    await until(
      'the migration’s backend gone',
      () => migrating(),
      (n) => n === 0,
      90_000,
    );
    expect(
      await withClient(inClinic, async (client) => ({
        table: (await client.query("SELECT to_regclass('vanish_invoices') AS t")).rows[0]?.t ?? null,
        recorded: (
          await client.query('SELECT 1 FROM "_prisma_migrations" WHERE migration_name = $1', [
            '20991231000000_slow',
          ])
        ).rowCount,
      })),
    ).toEqual({ table: null, recorded: 0 });
  }, 180_000);

  it('ends a session whose next statement is sent into the vanished link, which no keepalive covers', async () => {
    // Between two statements of a migration (or a step's central work), the host vanishes; the
    // next statement then goes unacknowledged, and while it does the client's keepalive is
    // silent: the kernel retransmits for some 15 minutes.
    const { netns, url } = await serverBehindNamespace();
    const started = Date.now();
    let vanishedAt = 0;
    const ended = withClient(url, async (client) => {
      await client.query('BEGIN');
      await client.query('CREATE TABLE vanish_next (id integer)');
      netns.vanish();
      vanishedAt = Date.now();
      await client.query('INSERT INTO vanish_next VALUES (1)');
      await client.query('COMMIT');
    }).then(
      () => 'committed' as const,
      (error: unknown) => error,
    );
    const result = await Promise.race([ended, sleep(CAP_MS).then(() => 'no answer' as const)]);
    const ms = Date.now() - vanishedAt;
    console.info(
      `the one-off session ended ${ms} ms after the vanish (${Date.now() - started} ms after it opened)`,
    );
    expect(result, `no end ${CAP_MS} ms after the vanish`).not.toBe('no answer');
    expect(result).toBeInstanceOf(SessionLostError);
    expect(ms).toBeLessThan(BOUND_MS);
  }, 120_000);
});
