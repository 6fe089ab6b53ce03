import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  afterFile,
  createTestDatabase,
  startTestApp,
  TEST_SECRETS,
  testConfig,
  testLogger,
} from '../../../test/harness.js';

import { encryptSecret } from '../../crypto.js';

const KEY = Buffer.from(TEST_SECRETS.ENCRYPTION_KEY, 'hex');

import { type SmtpSink, startSmtpSink } from '../../../test/smtp-sink.js';
import { type Databases, openDatabases } from '../../db/database.js';
import type { Config } from '../../env.js';
import { Prisma } from '../../generated/central/client.js';
import { startWorker, type Worker } from '../../jobs/index.js';
import {
  createMailTransport,
  deliverMail,
  devMailbox,
  enqueueMail,
  MAIL_MAX_ATTEMPTS,
  MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS,
  MailDeliveryError,
  type MailTransport,
  sendThenRecordMail,
} from './service.js';

interface MailStack {
  config: Config;
  db: Databases;
  transport: MailTransport;
  deliver(outboxId: string): Promise<void>;
}

/** A fresh central database, its mail transport and a real worker running `send_email`. */
async function startMailStack(env: Record<string, string>): Promise<MailStack> {
  // The retry tests fail on purpose; graphile-worker logs each failure as an error.
  const config = testConfig({ DATABASE_URL: await createTestDatabase('mail'), LOG_LEVEL: 'fatal', ...env });
  const logger = testLogger(config);
  const db = await openDatabases(config, logger);
  const transport = createMailTransport(config, logger);
  const deliver = (outboxId: string) =>
    deliverMail({ prisma: db.prisma, transport, logger, key: KEY }, outboxId);
  let worker: Worker | undefined;
  try {
    worker = await startWorker({
      connectionString: db.centralUrl,
      instanceId: randomUUID(),
      logger,
      pollInterval: 100,
      handlers: {
        send_email: ({ outboxId }) => deliver(outboxId),
        provision_clinic: async () => {
          throw new Error('not part of the mail tests');
        },
        purge_quarantine: async () => {},
        deliver_webhook: async () => {
          throw new Error('not part of the mail tests');
        },
        release_onboarding_names: async () => {
          throw new Error('not part of the mail tests');
        },
      },
    });
  } finally {
    // Registered even when the worker fails to start, so the database can be dropped.
    afterFile(async () => {
      await worker?.stop();
      transport.close();
      await db.close();
    });
  }
  return { config, db, transport, deliver };
}

async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function settledRow(db: Databases, id: string) {
  return eventually(async () => {
    const row = await db.prisma.mailOutbox.findUniqueOrThrow({ where: { id } });
    return row.status === 'PENDING' ? undefined : row;
  });
}

async function jobCount(db: Databases, key?: string): Promise<number> {
  const { rows } = await db.pool.query<{ count: number }>(
    'SELECT count(*)::int AS count FROM graphile_worker.jobs WHERE $1::text IS NULL OR key = $1',
    [key ?? null],
  );
  return rows[0]?.count ?? 0;
}

/** Waits until graphile-worker has recorded failure number `attempt` of the job and released it. */
async function failedJob(db: Databases, key: string, attempt: number): Promise<string> {
  return eventually(async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `SELECT id FROM graphile_worker.jobs
        WHERE key = $1 AND attempts = $2 AND locked_at IS NULL AND last_error IS NOT NULL`,
      [key, attempt],
    );
    return rows[0]?.id;
  });
}

/**
 * Makes a failed job due now. The retry itself stays graphile-worker's (same job, its attempt
 * counter and max_attempts); only its exponential backoff (e^1 ≈ 2.7 s, e^2 ≈ 7.4 s, …) is
 * skipped to keep the test fast.
 */
async function retryNow(db: Databases, jobId: string): Promise<void> {
  await db.pool.query('SELECT graphile_worker.reschedule_jobs(ARRAY[$1::bigint], run_at := now())', [jobId]);
}

let counter = 0;
function uniqueSubject(label: string): string {
  counter += 1;
  return `${label} #${counter} ${Date.now()}`;
}

describe('mail over SMTP', () => {
  let sink: SmtpSink;
  let stack: MailStack;

  beforeAll(async () => {
    sink = await startSmtpSink();
    afterFile(() => sink.stop());
    const url = new URL(sink.url);
    url.username = 'onramp';
    url.password = 's3cret-smtp-pass';
    stack = await startMailStack({ SMTP_URL: url.toString() });
  });

  it('sends a message enqueued in a committed transaction', async () => {
    const subject = uniqueSubject('Verify your e-mail');
    const { id } = await stack.db.prisma.$transaction(async (tx) =>
      enqueueMail(
        tx,
        {
          to: '  Dana@Example.COM ',
          subject,
          text: 'Your link: https://onramp.localhost/verify?token=abc',
          html: '<p>Your <a href="https://onramp.localhost/verify?token=abc">link</a></p>',
          kind: 'verify_email',
        },
        KEY,
      ),
    );

    const message = await sink.waitFor((mail) => mail.subject === subject);
    expect(message.text?.trim()).toBe('Your link: https://onramp.localhost/verify?token=abc');
    expect(message.html).toContain('<a href="https://onramp.localhost/verify?token=abc">link</a>');
    expect(message.from?.value).toEqual([{ name: 'Onramp', address: 'no-reply@onramp.localhost' }]);
    expect(message.to && !Array.isArray(message.to) ? message.to.text : undefined).toBe('dana@example.com');
    expect(message.messageId).toBe(`<${id}@onramp.localhost>`);

    const row = await settledRow(stack.db, id);
    expect(row).toMatchObject({ status: 'SENT', transport: 'smtp', attempts: 1, lastError: null });
    expect(row.sentAt).toBeInstanceOf(Date);
    expect(await jobCount(stack.db, `mail:${id}`)).toBe(0);
  });

  it('leaves neither row nor job when the transaction rolls back', async () => {
    const jobsBefore = await jobCount(stack.db);
    let id = '';
    await expect(
      stack.db.prisma.$transaction(async (tx) => {
        ({ id } = await enqueueMail(
          tx,
          {
            to: 'rolled@example.com',
            subject: uniqueSubject('Never sent'),
            text: 'nothing',
            kind: 'test',
          },
          KEY,
        ));
        const [inside] = await tx.$queryRaw<{ count: number }[]>`
          SELECT count(*)::int AS count FROM graphile_worker.jobs WHERE key = ${`mail:${id}`}`;
        expect(inside?.count).toBe(1);
        throw new Error('caller failed after enqueueing');
      }),
    ).rejects.toThrow('caller failed after enqueueing');

    expect(id).not.toBe('');
    expect(await stack.db.prisma.mailOutbox.findUnique({ where: { id } })).toBeNull();
    expect(await jobCount(stack.db, `mail:${id}`)).toBe(0);
    expect(await jobCount(stack.db)).toBe(jobsBefore);
    expect(sink.messages.some((mail) => mail.to && JSON.stringify(mail.to).includes('rolled@'))).toBe(false);
  });

  it('retries after temporary failures and delivers on the third attempt', async () => {
    sink.failNext(2);
    const rejectedBefore = sink.rejected;
    const subject = uniqueSubject('Retry me');
    const { id } = await stack.db.prisma.$transaction((tx) =>
      enqueueMail(tx, { to: 'retry@example.com', subject, text: 'third time lucky', kind: 'test' }, KEY),
    );

    const jobId = await failedJob(stack.db, `mail:${id}`, 1);
    const afterFirst = await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id } });
    expect(afterFirst.status).toBe('PENDING');
    expect(afterFirst.attempts).toBe(1);
    expect(afterFirst.lastError).toContain('451');
    expect(afterFirst.lastError).not.toContain('s3cret-smtp-pass');
    expect(afterFirst.lastError).not.toContain('third time lucky');
    expect(afterFirst.lastError).not.toContain('retry@example.com');

    await retryNow(stack.db, jobId);
    expect(await failedJob(stack.db, `mail:${id}`, 2)).toBe(jobId);
    await retryNow(stack.db, jobId);
    const message = await sink.waitFor((mail) => mail.subject === subject);
    expect(message.text?.trim()).toBe('third time lucky');
    expect(sink.rejected - rejectedBefore).toBe(2);

    const row = await settledRow(stack.db, id);
    expect(row).toMatchObject({ status: 'SENT', transport: 'smtp', attempts: 3, lastError: null });
  });

  it('marks the message FAILED on its last attempt instead of retrying', async () => {
    // A row without a job: deliverMail is called directly as the last attempt.
    const row = await stack.db.prisma.mailOutbox.create({
      data: {
        toAddress: 'last@example.com',
        subject: uniqueSubject('Last chance'),
        textBody: encryptSecret('x', KEY, 'mail_outbox'),
        kind: 'test',
        attempts: MAIL_MAX_ATTEMPTS - 2,
      },
    });
    sink.failNext(2);
    await expect(stack.deliver(row.id)).rejects.toBeInstanceOf(MailDeliveryError);
    await expect(stack.deliver(row.id)).resolves.toBeUndefined();
    const failed = await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id: row.id } });
    expect(failed).toMatchObject({ status: 'FAILED', attempts: MAIL_MAX_ATTEMPTS, sentAt: null });
    expect(failed.lastError).toContain('451');

    // Settled: another run neither sends nor counts an attempt.
    await stack.deliver(row.id);
    expect(await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      attempts: MAIL_MAX_ATTEMPTS,
    });
    expect(sink.messages.some((mail) => mail.subject === row.subject)).toBe(false);
  });

  it('sends once when the same outbox id is delivered twice', async () => {
    const subject = uniqueSubject('Only once');
    const { id } = await stack.db.prisma.$transaction((tx) =>
      enqueueMail(tx, { to: 'once@example.com', subject, text: 'once', kind: 'test' }, KEY),
    );
    await sink.waitFor((mail) => mail.subject === subject);
    await settledRow(stack.db, id);
    await stack.deliver(id);

    // Two concurrent runs of a row nobody has sent yet (no job: called directly).
    const concurrentSubject = uniqueSubject('Raced');
    const raced = await stack.db.prisma.mailOutbox.create({
      data: {
        toAddress: 'race@example.com',
        subject: concurrentSubject,
        textBody: encryptSecret('r', KEY, 'mail_outbox'),
        kind: 'test',
      },
    });
    await Promise.all([stack.deliver(raced.id), stack.deliver(raced.id)]);
    await sink.waitFor((mail) => mail.subject === concurrentSubject);
    // No wait for a duplicate: each deliver() resolved after the SMTP server's answer, and the
    // sink records a message before it answers, so whatever was sent is counted below.

    expect(sink.messages.filter((mail) => mail.subject === subject)).toHaveLength(1);
    expect(sink.messages.filter((mail) => mail.subject === concurrentSubject)).toHaveLength(1);
    expect(await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: 'SENT',
      attempts: 1,
    });
    expect(await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id: raced.id } })).toMatchObject({
      status: 'SENT',
      attempts: 1,
    });
  });

  it('leaves a row another run has claimed to it until the claim runs out (decision 075)', async () => {
    const subject = uniqueSubject('Claimed');
    const row = await stack.db.prisma.mailOutbox.create({
      data: {
        toAddress: 'claimed@example.com',
        subject,
        textBody: encryptSecret('c', KEY, 'mail_outbox'),
        kind: 'test',
        // A send in flight elsewhere: it counted its attempt and holds the row.
        attempts: 1,
        claimedUntil: new Date(Date.now() + 60_000),
      },
    });
    await stack.deliver(row.id);
    expect(await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: 'PENDING',
      attempts: 1,
    });
    // The claim ran out (its holder crashed): the next run takes the row over and sends it.
    await stack.db.prisma.mailOutbox.update({
      where: { id: row.id },
      data: { claimedUntil: new Date(Date.now() - 1) },
    });
    await stack.deliver(row.id);
    await sink.waitFor((mail) => mail.subject === subject);
    expect(await stack.db.prisma.mailOutbox.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: 'SENT',
      attempts: 2,
      claimedUntil: null,
    });
    expect(sink.messages.filter((mail) => mail.subject === subject)).toHaveLength(1);
  });

  it('sends a message at once, then records it SENT with what goes alongside, without a job', async () => {
    const subject = uniqueSubject('Your code');
    const { prisma } = stack.db;
    const logger = testLogger(stack.config);
    const { id } = await sendThenRecordMail(
      { prisma, transport: stack.transport, logger, key: KEY },
      { to: 'Now@Example.com', subject, text: 'Your sign-in code is 123456.', kind: 'login_code' },
      {
        alongside: Prisma.sql`INSERT INTO audit_log (action, target_id) VALUES ('test.alongside', ${subject})`,
      },
    );
    // Sent before the call returned, not by the worker.
    expect(sink.messages.find((mail) => mail.subject === subject)?.text?.trim()).toBe(
      'Your sign-in code is 123456.',
    );
    expect(await prisma.mailOutbox.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: 'SENT',
      transport: 'smtp',
      attempts: 1,
      lastError: null,
    });
    expect(await jobCount(stack.db, `mail:${id}`)).toBe(0);
    expect(await prisma.auditLog.count({ where: { action: 'test.alongside', targetId: subject } })).toBe(1);
  });

  it('leaves a message that could not be sent at once to its job, which retries it shortly', async () => {
    sink.failNext(1);
    const subject = uniqueSubject('Code, later');
    const { prisma } = stack.db;
    const logger = testLogger(stack.config);
    const before = Date.now();
    const { id } = await sendThenRecordMail(
      { prisma, transport: stack.transport, logger, key: KEY },
      { to: 'later@example.com', subject, text: 'Your sign-in code is 654321.', kind: 'login_code' },
    );
    const row = await prisma.mailOutbox.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: 'PENDING', attempts: 1 });
    expect(row.lastError).toMatch(/451/);
    const { rows } = await stack.db.pool.query<{ run_at: Date }>(
      'SELECT run_at FROM graphile_worker.jobs WHERE key = $1',
      [`mail:${id}`],
    );
    expect(rows[0]?.run_at.getTime()).toBeGreaterThanOrEqual(
      before + MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS - 1000,
    );
    // When due, the job sends it as its second attempt.
    await sink.waitFor((mail) => mail.subject === subject, 15_000);
    expect(await settledRow(stack.db, id)).toMatchObject({ status: 'SENT', attempts: 2, lastError: null });
  });

  it('refuses a recipient that is not a single address', async () => {
    for (const to of [
      'a@example.com, b@example.com',
      'Eve <eve@example.com>',
      'no-at-sign',
      'x@y\r\nBcc: z@w.com',
    ]) {
      await expect(
        enqueueMail(stack.db.prisma, { to, subject: 's', text: 't', kind: 'test' }, KEY),
      ).rejects.toThrow('single e-mail address');
    }
  });

  it('keeps SMTP mail out of the dev mailbox', async () => {
    expect(await devMailbox(stack.db.prisma, 'dana@example.com', KEY)).toEqual([]);
  });
});

describe('mail without SMTP_URL (dev mailbox)', async () => {
  // The real app: its worker delivers to the dev transport, and devMailbox is asked over HTTP.
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { db } = t.app.deps;

  const MAILBOX = /* GraphQL */ `
    query Mailbox($to: String!) {
      devMailbox(to: $to) { id to subject text html kind status createdAt sentAt }
    }
  `;

  it('accepts the message in the dev transport and lists it newest first', async () => {
    expect(t.app.deps.mail.name).toBe('dev');
    const first = await db.prisma.$transaction((tx) =>
      enqueueMail(
        tx,
        { to: 'Pat@Clinic.test', subject: 'First', text: 'code 123456', kind: 'login_code' },
        KEY,
      ),
    );
    await settledRow(db, first.id);
    const second = await db.prisma.$transaction((tx) =>
      enqueueMail(
        tx,
        {
          to: 'pat@clinic.test',
          subject: 'Second',
          text: 'plain',
          html: '<b>rich</b>',
          kind: 'invite',
        },
        KEY,
      ),
    );
    const row = await settledRow(db, second.id);
    expect(row).toMatchObject({ status: 'SENT', transport: 'dev', attempts: 1 });

    const mailbox = await devMailbox(db.prisma, '  PAT@clinic.test ', KEY);
    expect(mailbox.map((message) => message.subject)).toEqual(['Second', 'First']);
    expect(mailbox[1]).toMatchObject({
      to: 'pat@clinic.test',
      text: 'code 123456',
      kind: 'login_code',
      html: null,
    });
    expect(await devMailbox(db.prisma, 'someone-else@clinic.test', KEY)).toEqual([]);

    const { status, body } = await t.gql<{ devMailbox: Record<string, unknown>[] }>(
      MAILBOX,
      { to: 'Pat@Clinic.Test' },
      await t.superAdmin(),
    );
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const messages = body.data?.devMailbox ?? [];
    expect(messages).toHaveLength(2);
    expect(messages[0]).toMatchObject({
      id: second.id,
      to: 'pat@clinic.test',
      subject: 'Second',
      text: 'plain',
      html: '<b>rich</b>',
      kind: 'invite',
      status: 'SENT',
    });
    expect(typeof messages[0]?.sentAt).toBe('string');
    // Who may read it, and that production refuses it, is in authz.test.ts and app.test.ts.
  });
});
