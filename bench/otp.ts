/**
 * E-mail code sign-in benchmark: Onramp's `requestLoginCode` → read the code → `signInWithCode`
 * against Better Auth's emailOTP plugin (send-verification-otp → read → sign-in/email-otp), on
 * one throw-away embedded PostgreSQL, both over HTTP from this process, 8 clients at once.
 *
 * Both systems: codes stored hashed, send limits off, users created beforehand (e-mail verified,
 * no clinic), a delivery the benchmark can read back over HTTP. The bursts alternate between the
 * systems round by round, so both see the same machine. See bench/README.md for what each side
 * does per call.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { betterAuth } from 'better-auth';
import { getMigrations } from 'better-auth/db/migration';
import { toNodeHandler } from 'better-auth/node';
import { emailOTP } from 'better-auth/plugins/email-otp';
import pg from 'pg';
import { ensureDatabase } from '../server/src/db/database.js';
import { databaseUrl } from '../server/src/db/sql.js';
import { createLogger } from '../server/src/logger.js';
import { createMailTransport, type MailTransport } from '../server/src/modules/mail/service.js';
import { busyCores, pgCpuDelta, postgresCpu, readPostmasterPid, systemCpu } from './cpu.js';
import {
  type BenchOptions,
  type BenchServer,
  formatMs,
  inParallel,
  judge,
  latencyRow,
  median,
  percentile,
  type Row,
  type Sql,
  type Suite,
  type SuiteResult,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

/** Concurrent HTTP clients, each running one flow after another. */
const CLIENTS = 8;
/** Timed bursts per system, alternating which system goes first. */
const ROUNDS = 3;
/** How often a client looks for its code until it has arrived. */
const POLL_MS = 2;
/** A code that has not arrived after this long counts as a failed flow. */
const READ_TIMEOUT_MS = 10_000;

const TARGETS = {
  flowsPerSecond: { op: '>=', value: 1.5, text: '≥ 1.50× Better Auth' },
  p99: { op: '<=', value: 1, text: '≤ 1.00× Better Auth p99' },
} as const;

export const otp: Suite = { name: 'otp', run };

/** One system under test, as its HTTP clients see it. */
interface System {
  label: string;
  /** Asks for a code; throws unless the answer is the success one. */
  request(email: string): Promise<void>;
  /** The delivered code, or null while it has not arrived. */
  read(email: string): Promise<string | null>;
  /** Signs in; throws unless a session came back. */
  signIn(email: string, code: string): Promise<void>;
  /** What the database holds for the e-mail's live code (to check it is not the code itself). */
  stored(email: string): Promise<string | null>;
  /** Creates the users of a burst (e-mail verified, no clinic). */
  createUsers(emails: readonly string[]): Promise<void>;
  /** The database whose commits are counted. */
  database: string;
}

interface Flow {
  requestMs: number;
  readMs: number;
  signInMs: number;
  flowMs: number;
  /** Polls until the code was there (1 = there at the first look). */
  reads: number;
  failure?: string;
}

interface Burst {
  label: string;
  round: number;
  flows: Flow[];
  wallMs: number;
  /** Successful flows per second of wall time. */
  rate: number;
  /** CPU of this process (both servers and all clients) in cores. */
  nodeCores: number;
  /** CPU of PostgreSQL's processes in cores (Linux), and of everything else on the machine. */
  pgCores?: number;
  otherCores?: number;
  commitsPerFlow: number;
}

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(options, (server) => measure(options, server));
}

async function measure(options: BenchOptions, server: BenchServer): Promise<SuiteResult> {
  const { sql } = server;
  const flowsPerBurst = options.otpFlows;
  const postmasterPid = readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid'));
  options.log('starting Onramp (LOGIN_CODE_SEND_LIMITS=off, no warm pool)');
  const onramp = await onrampSystem(server);
  options.log('starting Better Auth (emailOTP, storeOTP hashed, rate limit off)');
  const better = await betterAuthSystem(server);
  const systems = [onramp, better];

  let batch = 0;
  const emailsFor = (system: System, count: number) => {
    batch++;
    const tag = system.label === 'Onramp' ? 'onramp' : 'ba';
    return Array.from({ length: count }, (_, i) => `otp-${tag}-${batch}-${i}@bench.example.com`);
  };

  options.log('checking that both store a hash, not the code');
  for (const system of systems) {
    const [email = ''] = emailsFor(system, 1);
    await system.createUsers([email]);
    await system.request(email);
    let code: string | null = null;
    for (let looks = 0; !code; looks++) {
      if (looks > 0) await sleep(POLL_MS);
      code = await system.read(email);
    }
    const stored = await system.stored(email);
    if (!stored || stored.includes(code)) throw new Error(`${system.label} stores the code in the clear`);
  }

  options.log(`warm-up: ${CLIENTS * 2} untimed flows per system`);
  for (const system of systems) {
    const emails = emailsFor(system, CLIENTS * 2);
    await system.createUsers(emails);
    const warm = await inParallel(emails, CLIENTS, (email) => flow(system, email));
    const failed = warm.find((item) => item.failure);
    if (failed) throw new Error(`${system.label}: warm-up flow failed: ${failed.failure}`);
  }

  const bursts: Burst[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? systems : [...systems].reverse();
    for (const system of order) {
      const emails = emailsFor(system, flowsPerBurst);
      await system.createUsers(emails);
      options.log(
        `round ${round}/${ROUNDS}: ${system.label}, ${flowsPerBurst} flows from ${CLIENTS} clients`,
      );
      bursts.push(await burst(system, emails, round, sql, postmasterPid));
    }
  }

  const rows: Row[] = [];
  const notes: string[] = [
    `${ROUNDS} rounds × ${flowsPerBurst} flows per system (BENCH_OTP_FLOWS), ${CLIENTS} clients, ` +
      `after ${CLIENTS * 2} untimed flows each; the systems alternate which goes first. A flow: ask for a ` +
      `code, poll its delivery every ${POLL_MS} ms until it is there, sign in with it. One fresh user per flow.`,
  ];
  const summary = (label: string) => {
    const own = bursts.filter((item) => item.label === label);
    const flows = own.flatMap((item) => item.flows).filter((item) => !item.failure);
    return {
      own,
      flows,
      rate: median(own.map((item) => item.rate)),
      failures: own.flatMap((item) => item.flows.flatMap((one) => (one.failure ? [one.failure] : []))),
    };
  };
  const ours = summary(onramp.label);
  const theirs = summary(better.label);
  const rateRatio = ours.rate / theirs.rate;
  const range = (values: number[]) => `${Math.min(...values).toFixed(1)}–${Math.max(...values).toFixed(1)}/s`;

  rows.push(
    judge({
      name: 'flows per second (median of rounds)',
      n: ours.own.length,
      ratio: rateRatio,
      ratioText:
        `${rateRatio.toFixed(2)}× (Onramp ${ours.rate.toFixed(1)}/s [${range(ours.own.map((b) => b.rate))}], ` +
        `Better Auth ${theirs.rate.toFixed(1)}/s [${range(theirs.own.map((b) => b.rate))}])`,
      target: TARGETS.flowsPerSecond,
    }),
  );
  const calls: [string, keyof Flow][] = [
    ['request code', 'requestMs'],
    ['read code', 'readMs'],
    ['sign in', 'signInMs'],
    ['whole flow', 'flowMs'],
  ];
  for (const [call, key] of calls) {
    const mine = ours.flows.map((item) => item[key] as number);
    const other = theirs.flows.map((item) => item[key] as number);
    const ratio = percentile(mine, 99) / percentile(other, 99);
    const judged = key !== 'flowMs';
    const ratioRow = {
      ratio,
      ratioText: `p99 ${formatMs(percentile(mine, 99))} vs ${formatMs(percentile(other, 99))} ms = ${ratio.toFixed(2)}×`,
      ...(judged ? { target: TARGETS.p99 } : {}),
    };
    rows.push(judge(latencyRow(`Onramp: ${call}`, mine, ratioRow)));
    rows.push(latencyRow(`  Better Auth: ${call}`, other));
  }

  for (const item of bursts) {
    const ok = item.flows.filter((one) => !one.failure);
    const polls = ok.map((one) => one.reads);
    notes.push(
      `round ${item.round} ${item.label}: ${ok.length}/${item.flows.length} flows in ${(item.wallMs / 1000).toFixed(2)} s ` +
        `= ${item.rate.toFixed(1)}/s; p50/p99 request ${formatMs(
          percentile(
            ok.map((one) => one.requestMs),
            50,
          ),
        )}/` +
        `${formatMs(
          percentile(
            ok.map((one) => one.requestMs),
            99,
          ),
        )}, read ${formatMs(
          percentile(
            ok.map((one) => one.readMs),
            50,
          ),
        )}/` +
        `${formatMs(
          percentile(
            ok.map((one) => one.readMs),
            99,
          ),
        )}, sign-in ${formatMs(
          percentile(
            ok.map((one) => one.signInMs),
            50,
          ),
        )}/` +
        `${formatMs(
          percentile(
            ok.map((one) => one.signInMs),
            99,
          ),
        )} ms; looks per code p50 ${median(polls)}, max ${Math.max(...polls)}; ` +
        `CPU in cores: this process ${item.nodeCores.toFixed(2)}` +
        (item.pgCores === undefined ? '' : `, PostgreSQL ${item.pgCores.toFixed(2)}`) +
        (item.otherCores === undefined ? '' : `, other processes ${item.otherCores.toFixed(2)}`) +
        `; per flow ${((item.nodeCores * item.wallMs) / item.flows.length).toFixed(1)} ms node` +
        (item.pgCores === undefined
          ? ''
          : ` + ${((item.pgCores * item.wallMs) / item.flows.length).toFixed(1)} ms PostgreSQL`) +
        `; ${item.commitsPerFlow.toFixed(1)} commits per flow.`,
    );
  }
  for (const { label, failures } of [
    { label: onramp.label, failures: ours.failures },
    { label: better.label, failures: theirs.failures },
  ]) {
    if (failures.length > 0) {
      notes.push(
        `${label}: ${failures.length} FAILED flows:`,
        ...[...new Set(failures)].slice(0, 5).map((f) => `    ${f}`),
      );
    }
  }
  return {
    rows,
    notes,
    meta: {
      clients: CLIENTS,
      rounds: ROUNDS,
      flowsPerBurst,
      pollMs: POLL_MS,
      bursts: bursts.map(({ flows, ...rest }) => ({
        ...rest,
        failures: flows.filter((one) => one.failure).length,
      })),
    },
  };
}

async function burst(
  system: System,
  emails: readonly string[],
  round: number,
  sql: Sql,
  postmasterPid: number | undefined,
): Promise<Burst> {
  const commitsBefore = await commits(sql, system.database);
  const cpuBefore = process.cpuUsage();
  const pgBefore = postgresCpu(postmasterPid);
  const machineBefore = systemCpu();
  const result = await timed(() => inParallel(emails, CLIENTS, (email) => flow(system, email)));
  const cpu = process.cpuUsage(cpuBefore);
  const pg = pgCpuDelta(pgBefore, postgresCpu(postmasterPid), result.ms);
  const machineAfter = systemCpu();
  // PostgreSQL publishes a backend's counters when it goes idle, at most once a second.
  await sleep(1100);
  const commitsAfter = await commits(sql, system.database);
  const ok = result.value.filter((one) => !one.failure).length;
  const nodeCores = (cpu.user + cpu.system) / 1000 / result.ms;
  const machineCores = busyCores(machineBefore, machineAfter);
  return {
    label: system.label,
    round,
    flows: result.value,
    wallMs: result.ms,
    rate: (ok / result.ms) * 1000,
    nodeCores,
    pgCores: pg?.total,
    otherCores:
      machineCores === undefined || !pg ? undefined : Math.max(0, machineCores - nodeCores - pg.total),
    commitsPerFlow: (commitsAfter - commitsBefore) / emails.length,
  };
}

async function commits(sql: Sql, database: string): Promise<number> {
  const { rows } = await sql.query<{ commits: string }>(
    'SELECT xact_commit::text AS commits FROM pg_stat_database WHERE datname = $1',
    [database],
  );
  return Number(rows[0]?.commits ?? 0);
}

/** request → read (polling) → sign in, each call timed. */
async function flow(system: System, email: string): Promise<Flow> {
  const started = performance.now();
  const times = { requestMs: 0, readMs: 0, signInMs: 0, flowMs: 0, reads: 0 };
  try {
    times.requestMs = (await timed(() => system.request(email))).ms;
    const read = await timed(async () => {
      for (;;) {
        times.reads++;
        const code = await system.read(email);
        if (code) return code;
        if (performance.now() - started > READ_TIMEOUT_MS) throw new Error('the code never arrived');
        await sleep(POLL_MS);
      }
    });
    times.readMs = read.ms;
    times.signInMs = (await timed(() => system.signIn(email, read.value))).ms;
    times.flowMs = performance.now() - started;
    return times;
  } catch (error) {
    return { ...times, flowMs: performance.now() - started, failure: (error as Error).message };
  }
}

/** A POST as a browser on the server's own origin sends it (Better Auth refuses one without Origin). */
async function postJson<T>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: new URL(url).origin },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as T };
}

const REQUEST_CODE = `mutation RequestCode($email: String!) {
  requestLoginCode(email: $email) { __typename ... on LoginCodeRequested { expiresInSeconds } }
}`;
const SIGN_IN = `mutation SignIn($email: String!, $code: String!) {
  signInWithCode(email: $email, code: $code) {
    __typename
    ... on AuthSession { accessToken }
    ... on Error { message }
  }
}`;
type GraphQLBody<T> = { data?: T; errors?: { message: string }[] };

/**
 * The real app (buildApp) without a warm pool, send limits off, mail to the dev mailbox through
 * a transport that also keeps each delivered code in memory, as Better Auth's
 * sendVerificationOTP callback does; both are read back with one GET of the same endpoint.
 */
async function onrampSystem(server: BenchServer): Promise<System> {
  const database = 'bench_central_otp';
  const mailbox = new Map<string, string>();
  const dev = createMailTransport(
    { smtpUrl: undefined, baseDomain: 'bench.localhost' },
    createLogger({ env: 'test', logLevel: 'error' }),
  );
  const capturing: MailTransport = {
    name: dev.name,
    async send(message) {
      await dev.send(message);
      const code = /\b(\d{6})\b/.exec(message.text)?.[1];
      if (code) mailbox.set(message.to, code);
    },
    close: () => dev.close(),
  };
  const { app, url } = await startBenchApp(
    server,
    database,
    0,
    { LOGIN_CODE_SEND_LIMITS: 'off' },
    { mailTransport: capturing },
  );
  const graphql = `${url}/graphql`;
  const mailboxUrl = await serveMailbox(server, mailbox, () => false);
  return {
    label: 'Onramp',
    database,
    async request(email) {
      const { status, body } = await postJson<GraphQLBody<{ requestLoginCode?: { __typename: string } }>>(
        graphql,
        { query: REQUEST_CODE, variables: { email } },
      );
      const typename = body.data?.requestLoginCode?.__typename;
      if (typename !== 'LoginCodeRequested')
        throw new Error(`requestLoginCode: HTTP ${status} ${JSON.stringify(body).slice(0, 200)}`);
    },
    read: (email) => readMailbox(mailboxUrl, email),
    async signIn(email, code) {
      const { status, body } = await postJson<
        GraphQLBody<{ signInWithCode?: { __typename: string; message?: string } }>
      >(graphql, { query: SIGN_IN, variables: { email, code } });
      const payload = body.data?.signInWithCode;
      if (payload?.__typename !== 'AuthSession')
        throw new Error(`signInWithCode: HTTP ${status} ${JSON.stringify(payload ?? body).slice(0, 200)}`);
    },
    async stored(email) {
      const row = await app.deps.db.prisma.loginCode.findUnique({ where: { email } });
      return row?.codeHmac ?? null;
    },
    async createUsers(emails) {
      await app.deps.db.prisma.user.createMany({
        data: emails.map((email) => ({
          email,
          firstName: 'Bench',
          lastName: 'User',
          role: 'STAFF' as const,
          emailVerifiedAt: new Date(),
        })),
      });
    },
  };
}

/**
 * Better Auth on its own database of the same server (its tables made by its migration API),
 * served by `toNodeHandler` on a plain node:http server in this process. Its sendVerificationOTP
 * callback keeps the code in memory; GET /dev/otp?email=… reads it back, so reading costs one
 * HTTP round trip on both sides.
 */
async function betterAuthSystem(server: BenchServer): Promise<System> {
  const database = 'bench_better_auth';
  await ensureDatabase(server.serverUrl, database);
  // Prisma's pool in Onramp has 10 connections; the same here.
  const pool = new pg.Pool({ connectionString: databaseUrl(server.serverUrl, database), max: 10 });
  // An idle connection dropped by the server must not crash the benchmark (the next query reconnects).
  pool.on('error', () => {});
  const mailbox = new Map<string, string>();
  // Set once Better Auth exists, which needs the server's URL first.
  let handle: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  const url = await serveMailbox(server, mailbox, (req, res) => {
    if (handle) handle(req, res);
    else res.writeHead(503).end();
    return true;
  });
  server.closers.push(() => pool.end());
  const options = {
    database: pool,
    secret: 'x'.repeat(40),
    baseURL: url,
    logger: { level: 'error' as const },
    telemetry: { enabled: false },
    rateLimit: { enabled: false },
    plugins: [
      emailOTP({
        storeOTP: 'hashed',
        disableSignUp: true,
        otpLength: 6,
        expiresIn: 600,
        async sendVerificationOTP({ email, otp: code }) {
          mailbox.set(email, code);
        },
      }),
    ],
  };
  const { runMigrations } = await getMigrations(options);
  await runMigrations();
  const auth = betterAuth(options);
  const nodeHandler = toNodeHandler(auth);
  handle = (req, res) => void nodeHandler(req, res);
  const context = await auth.$context;
  return {
    label: 'Better Auth',
    database,
    async request(email) {
      const { status, body } = await postJson<{ success?: boolean }>(
        `${url}/api/auth/email-otp/send-verification-otp`,
        { email, type: 'sign-in' },
      );
      if (status !== 200 || body.success !== true)
        throw new Error(`send-verification-otp: HTTP ${status} ${JSON.stringify(body).slice(0, 200)}`);
    },
    read: (email) => readMailbox(url, email),
    async signIn(email, code) {
      const { status, body } = await postJson<{ token?: string }>(`${url}/api/auth/sign-in/email-otp`, {
        email,
        otp: code,
      });
      if (status !== 200 || !body.token)
        throw new Error(`sign-in/email-otp: HTTP ${status} ${JSON.stringify(body).slice(0, 200)}`);
    },
    async stored(email) {
      const { rows } = await pool.query<{ value: string }>(
        'SELECT value FROM verification WHERE identifier = $1',
        [`sign-in-otp-${email}`],
      );
      return rows[0]?.value ?? null;
    },
    async createUsers(emails) {
      for (const email of emails) {
        await context.internalAdapter.createUser(
          { email, name: 'Bench User', emailVerified: true },
          { method: 'email-otp' },
        );
      }
    },
  };
}

/**
 * An HTTP server in this process answering `GET /dev/otp?email=…` from `mailbox` (the codes a
 * system delivered) and handing every other request to `other`. @returns its base URL.
 */
async function serveMailbox(
  server: BenchServer,
  mailbox: ReadonlyMap<string, string>,
  other: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<string> {
  const http: Server = createServer((req, res) => {
    if (req.url?.startsWith('/dev/otp?')) {
      const email = new URL(req.url, 'http://localhost').searchParams.get('email') ?? '';
      const code = mailbox.get(email);
      res.writeHead(code ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ otp: code ?? null }));
      return;
    }
    if (!other(req, res)) res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  server.closers.push(async () => {
    http.closeAllConnections();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
}

async function readMailbox(baseUrl: string, email: string): Promise<string | null> {
  const response = await fetch(`${baseUrl}/dev/otp?email=${encodeURIComponent(email)}`);
  return ((await response.json()) as { otp: string | null }).otp;
}
