/**
 * The verification e-mail of a registration (issue 16, decision 075): sent by the instance that
 * registered, right after the commit, without waking a job worker anywhere in the cluster (every
 * `jobs:insert` NOTIFY wakes one worker in every instance, decision 071); the outbox row is the
 * durable record, and the reconcile pass's sweep gives a `send_email` job to a row still unsent
 * after the grace period (a crash, a send that never ended).
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../../test/harness.js';
import { registerClinic } from '../../../test/registration-flow.js';
import { startSmtpSink } from '../../../test/smtp-sink.js';
import { createMailTransport, type MailTransport } from '../mail/service.js';

const sink = await startSmtpSink();
afterAll(() => sink.stop());

const sentTo = (email: string) => (message: { to?: unknown }) =>
  JSON.stringify(message.to ?? '').includes(email);
const delivered = (email: string) => sink.messages.filter(sentTo(email)).length;

async function registered(t: TestApp): Promise<string> {
  const answer = await registerClinic(t);
  expect(answer.result?.__typename, JSON.stringify(answer)).toBe('RegisterClinicSuccess');
  return answer.result?.user?.email as string;
}

async function verificationRow(t: TestApp, email: string) {
  return t.app.deps.db.prisma.mailOutbox.findFirstOrThrow({
    where: { toAddress: email, kind: 'email_verification' },
    select: { id: true, status: true, attempts: true, transport: true },
  });
}

async function jobsFor(t: TestApp, outboxId: string): Promise<number> {
  const [row] = await t.app.deps.db.prisma.$queryRaw<{ n: number }[]>`
    SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE key = ${`mail:${outboxId}`}`;
  return row?.n ?? 0;
}

/** Resolves once `check` holds, polling the database (no timing is asserted). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('a registration on the happy path wakes no job worker', async () => {
  // Polling every 10 minutes: within the test, a `get_job` can only come from a NOTIFY. No
  // recurring jobs: the hourly purge's tick (jobs/index.ts CRONTAB) adds its job with a NOTIFY,
  // which a run counted when the top of an hour fell between its two counts (1, expected 0).
  const t = await startTestApp({ SMTP_URL: sink.url }, { jobPollIntervalMs: 600_000, jobCrontab: '' });
  const database = new URL(t.config.databaseUrl ?? '').pathname.slice(1);

  // graphile-worker's fetch (`get_job`, dist/sql/getJobs.js) on the central database, by text.
  let getJobs = 0;
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string }).text ?? '');
    if (this.database === database && text.includes('_private_jobs as jobs') && text.includes('skip locked'))
      getJobs += 1;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof pg.Client.prototype.query;
  afterAll(() => {
    pg.Client.prototype.query = query;
  });

  const listener = new pg.Client({ connectionString: t.config.databaseUrl });
  await listener.connect();
  afterAll(() => listener.end());
  let wakeUps = 0;
  const markers = new Map<string, () => void>();
  listener.on('notification', (message) => {
    if (message.channel === 'jobs:insert') {
      // `count` > 0 is what makes graphile-worker nudge a worker (dist/main.js); removals say -1.
      const count = (JSON.parse(message.payload ?? '{}') as { count?: number }).count ?? 1;
      if (count > 0) wakeUps += count;
    } else markers.get(message.payload ?? '')?.();
  });
  await listener.query('LISTEN "jobs:insert"; LISTEN "test:marker"');

  /** Every NOTIFY committed before this call has reached the listener when it resolves. */
  async function drained(): Promise<void> {
    const marker = `m${Math.random()}`;
    const heard = new Promise<void>((resolve) => markers.set(marker, resolve));
    await t.app.deps.db.prisma.$executeRaw`SELECT pg_notify('test:marker', ${marker})`;
    await heard;
  }

  it('queues no job (0 jobs:insert NOTIFY, 0 get_job) and the mail arrives once', async () => {
    const warm = await registered(t); // sessions, spares, caches
    await sink.waitFor(sentTo(warm));
    await t.app.deps.committedMail.idle();
    await drained();
    wakeUps = 0;
    getJobs = 0;

    const email = await registered(t);
    await until(async () => (await verificationRow(t, email)).status === 'SENT', 'the mail to be sent');
    await t.app.deps.committedMail.idle();
    await drained();
    expect(wakeUps).toBe(0);
    expect(getJobs).toBe(0);
    const row = await verificationRow(t, email);
    expect(row).toMatchObject({ status: 'SENT', attempts: 1, transport: 'smtp' });
    expect(await jobsFor(t, row.id)).toBe(0);
    await sink.waitFor(sentTo(email));
    expect(delivered(email)).toBe(1);
  });
});

describe('the job is the safety net of the in-process send', async () => {
  // A transport that can be made to hang: the in-process send that never ends stands for an
  // instance that claimed the row and crashed before recording it.
  let inner: MailTransport | undefined;
  let hangNext = false;
  const hung: (() => void)[] = [];
  const transport: MailTransport = {
    name: 'smtp',
    async send(message) {
      if (hangNext) {
        hangNext = false;
        await new Promise<void>((_resolve, reject) => hung.push(() => reject(new Error('abandoned'))));
      }
      if (!inner) throw new Error('transport not ready');
      await inner.send(message);
    },
    close: () => inner?.close(),
  };
  const GRACE_MS = 300;
  // No reconcile pass but the one at start (they come every PROVISIONING_LEASE_SECONDS): its sweep
  // would hand a row whose in-process send outlasts the short grace, as under load, to a job.
  const t = await startTestApp(
    { SMTP_URL: sink.url, PROVISIONING_LEASE_SECONDS: '3600' },
    { mailTransport: transport, mailSendGraceMs: GRACE_MS },
  );
  inner = createMailTransport(t.config, t.app.deps.logger);
  // A hung send left by a failed test would hold the app's stop (committedMail.idle()) for good.
  afterAll(() => {
    for (const abandon of hung.splice(0)) abandon();
  });

  /** Whether the row is still within its grace by the database's clock (the sweep's). */
  async function withinGrace(outboxId: string): Promise<boolean> {
    const [row] = await t.app.deps.db.prisma.$queryRaw<{ within: boolean }[]>`
      SELECT created_at >= now() - ${GRACE_MS}::int * interval '1 millisecond' AS within
        FROM mail_outbox WHERE id = ${outboxId}::uuid`;
    return row?.within ?? false;
  }

  it('a registration mail that is not sent within the grace is delivered once by its job', async () => {
    hangNext = true;
    const email = await registered(t);
    const row = await verificationRow(t, email);
    // Within the grace the sweep leaves the row to the instance sending it: asserted when the row
    // is still within it after the sweep (a loaded machine may take longer than the grace to get here).
    const early = await t.app.deps.committedMail.requeueUnsent();
    if (await withinGrace(row.id)) expect(early).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS + 50));
    expect(early + (await t.app.deps.committedMail.requeueUnsent())).toBe(1);
    await sink.waitFor(sentTo(email));
    await until(
      async () => (await verificationRow(t, email)).status === 'SENT',
      'the job to record the send',
    );
    expect(await verificationRow(t, email)).toMatchObject({ status: 'SENT', attempts: 2 });
    // The abandoned send ends (with a failure) only now: the row is settled, nothing is sent again.
    for (const abandon of hung.splice(0)) abandon();
    await t.app.deps.committedMail.idle();
    await until(async () => (await jobsFor(t, row.id)) === 0, 'the jobs to finish');
    expect(await t.app.deps.committedMail.requeueUnsent()).toBe(0);
    expect(delivered(email)).toBe(1);
    expect(await verificationRow(t, email)).toMatchObject({ status: 'SENT', attempts: 2 });
  });

  it('a refused in-process send is retried by its job, its attempt counted', async () => {
    sink.failNext(1);
    const rejected = sink.rejected;
    const email = await registered(t);
    await sink.waitFor(sentTo(email));
    expect(sink.rejected).toBe(rejected + 1);
    await until(async () => (await verificationRow(t, email)).status === 'SENT', 'the retry to be recorded');
    const row = await verificationRow(t, email);
    expect(row).toMatchObject({ status: 'SENT', attempts: 2 });
    await until(async () => (await jobsFor(t, row.id)) === 0, 'the job to finish');
    expect(delivered(email)).toBe(1);
  });

  it('the registration mail arrives exactly once at the SMTP sink', async () => {
    const email = await registered(t);
    await sink.waitFor(sentTo(email));
    await t.app.deps.committedMail.idle();
    // Past the grace, the sweep finds nothing to hand to a job: the row is SENT.
    await new Promise((resolve) => setTimeout(resolve, GRACE_MS + 50));
    expect(await t.app.deps.committedMail.requeueUnsent()).toBe(0);
    const row = await verificationRow(t, email);
    expect(row).toMatchObject({ status: 'SENT', attempts: 1 });
    expect(await jobsFor(t, row.id)).toBe(0);
    expect(delivered(email)).toBe(1);
  });
});
