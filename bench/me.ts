/**
 * The authenticated read path: `{ me { id email } }` with a valid access token, Onramp (the real
 * app) against a bare node:http + graphql + pg server answering the same query from the same row
 * of the same database, 8 clients at once, both in this process. See bench/README.md.
 *
 * The baseline is honest about what a signed-in read needs: it verifies the same HS256 token with
 * the same library and options, looks its session up (a Map filled from the same session query
 * Onramp runs, as Onramp's cache is), parses and validates the operation on every request, and
 * reads the user with one SELECT. What it leaves out is Onramp's own: row-level security (the
 * scoped transaction), the plugins (limits, CSRF, metrics), the per-request context and logger.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildSchema, execute, parse, validate } from 'graphql';
import { jwtVerify } from 'jose';
import pg from 'pg';
import { databaseUrl } from '../server/src/db/sql.js';
import { createLogger } from '../server/src/logger.js';
import { createMailTransport, type MailTransport } from '../server/src/modules/mail/service.js';
import { busyCores, pgCpuDelta, postgresCpu, readPostmasterPid, systemCpu } from './cpu.js';
import {
  type BenchOptions,
  type BenchServer,
  inParallel,
  judge,
  latencyRow,
  median,
  type Row,
  type Suite,
  type SuiteResult,
  startBenchApp,
  timed,
  withBenchServer,
} from './lib.js';

/** Concurrent HTTP clients (keep-alive connections), each sending one request after another. */
const CLIENTS = 8;
/** Timed bursts per system, alternating which system goes first. */
const ROUNDS = 3;
const DATABASE = 'bench_central_me';
const JWT_SECRET = 'x'.repeat(40); // startBenchApp's

const TARGET = { op: '>=', value: 0.8, text: '≥ 0.80× bare graphql + pg' } as const;

const ME = '{ me { id email } }';

export const me: Suite = { name: 'me', run };

interface System {
  label: string;
  url: string;
}

interface Burst {
  label: string;
  round: number;
  samplesMs: number[];
  wallMs: number;
  rate: number;
  /** CPU per request, in ms: this process (server and clients), PostgreSQL. */
  nodeMsPerRequest: number;
  pgMsPerRequest?: number;
  otherCores?: number;
}

function run(options: BenchOptions): Promise<SuiteResult> {
  return withBenchServer(options, (server) => measure(options, server));
}

async function measure(options: BenchOptions, server: BenchServer): Promise<SuiteResult> {
  // 100 requests per iteration: 3,000 per burst by default, 300 in CI's smoke run.
  const requests = Math.max(100, options.iterations * 100);
  const postmasterPid = readPostmasterPid(join(server.tmp, 'postgres', 'pg', 'postmaster.pid'));

  options.log('starting Onramp and signing a user in with an e-mail code');
  const { url, token, userId } = await onrampWithSession(server);
  const onramp: System = { label: 'Onramp', url: `${url}/graphql` };
  options.log('starting the bare node:http + graphql + pg server');
  const bare: System = { label: 'bare graphql + pg', url: await bareServer(server) };
  const systems = [onramp, bare];

  // Both must give the same answer for the same token before anything is timed.
  for (const system of systems) {
    const body = await requestMe(system.url, token);
    if (body.data?.me?.id !== userId)
      throw new Error(`${system.label}: ${JSON.stringify(body).slice(0, 200)}`);
  }

  options.log(`warm-up: ${CLIENTS * 50} untimed requests per system`);
  for (const system of systems) await burst(system, token, CLIENTS * 50, 0, postmasterPid);

  const bursts: Burst[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? systems : [...systems].reverse();
    for (const system of order) {
      options.log(`round ${round}/${ROUNDS}: ${system.label}, ${requests} requests`);
      bursts.push(await burst(system, token, requests, round, postmasterPid));
    }
  }

  const of = (system: System) => bursts.filter((one) => one.label === system.label);
  const rate = (system: System) => median(of(system).map((one) => one.rate));
  const rows: Row[] = [];
  for (const system of systems) {
    const mine = of(system);
    const rates = mine.map((one) => one.rate);
    rows.push(
      latencyRow(
        `${system.label}: me`,
        mine.flatMap((one) => one.samplesMs),
        {
          ratioText: `${rate(system).toFixed(0)}/s (${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)})`,
        },
      ),
    );
  }
  rows.push(
    judge({
      name: 'me requests/s, Onramp vs bare',
      n: ROUNDS,
      ratio: rate(onramp) / rate(bare),
      ratioText: `${(rate(onramp) / rate(bare)).toFixed(2)}× (${rate(onramp).toFixed(0)} vs ${rate(bare).toFixed(0)}/s)`,
      target: TARGET,
    }),
  );

  const notes = bursts.map(
    (one) =>
      `round ${one.round}, ${one.label}: ${one.rate.toFixed(0)}/s; CPU per request ${one.nodeMsPerRequest.toFixed(2)} ms ` +
      `in this process (server and clients)` +
      (one.pgMsPerRequest === undefined ? '' : ` + ${one.pgMsPerRequest.toFixed(2)} ms PostgreSQL`) +
      (one.otherCores === undefined ? '' : `, other processes ${one.otherCores.toFixed(2)} cores`),
  );
  notes.push(
    `${CLIENTS} clients, ${requests} requests per burst, ${ROUNDS} rounds after ${CLIENTS * 50} untimed requests each; ` +
      `${cpus().length} CPUs`,
  );
  return { rows, notes, meta: { clients: CLIENTS, rounds: ROUNDS, requests } };
}

async function burst(
  system: System,
  token: string,
  count: number,
  round: number,
  postmasterPid: number | undefined,
): Promise<Burst> {
  const cpuBefore = process.cpuUsage();
  const pgBefore = postgresCpu(postmasterPid);
  const machineBefore = systemCpu();
  const result = await timed(() =>
    inParallel(
      Array.from({ length: count }, (_, i) => i),
      CLIENTS,
      async () => {
        const started = performance.now();
        const body = await requestMe(system.url, token);
        if (!body.data?.me?.id) throw new Error(`${system.label}: ${JSON.stringify(body).slice(0, 200)}`);
        return performance.now() - started;
      },
    ),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const pgCpu = pgCpuDelta(pgBefore, postgresCpu(postmasterPid), result.ms);
  const machineAfter = systemCpu();
  const nodeCores = (cpu.user + cpu.system) / 1000 / result.ms;
  const machineCores = busyCores(machineBefore, machineAfter);
  return {
    label: system.label,
    round,
    samplesMs: result.value,
    wallMs: result.ms,
    rate: (count / result.ms) * 1000,
    nodeMsPerRequest: (nodeCores * result.ms) / count,
    pgMsPerRequest: pgCpu && (pgCpu.total * result.ms) / count,
    otherCores:
      machineCores === undefined || !pgCpu ? undefined : Math.max(0, machineCores - nodeCores - pgCpu.total),
  };
}

type MeBody = { data?: { me?: { id: string; email: string } | null }; errors?: { message: string }[] };

async function requestMe(url: string, token: string): Promise<MeBody> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: ME }),
  });
  return (await response.json()) as MeBody;
}

/**
 * The real app (no warm pool, dev mailbox) and a user signed in through its public surface:
 * requestLoginCode, the code as the mail transport delivered it, signInWithCode.
 */
async function onrampWithSession(
  server: BenchServer,
): Promise<{ url: string; token: string; userId: string }> {
  let delivered: string | undefined;
  const dev = createMailTransport(
    { smtpUrl: undefined, baseDomain: 'bench.localhost' },
    createLogger({ env: 'test', logLevel: 'error' }),
  );
  const capturing: MailTransport = {
    name: dev.name,
    async send(message) {
      await dev.send(message);
      delivered = /\b(\d{6})\b/.exec(message.text)?.[1] ?? delivered;
    },
    close: () => dev.close(),
  };
  const { app, url } = await startBenchApp(server, DATABASE, 0, {}, { mailTransport: capturing });
  const email = 'me@bench.example.com';
  const user = await app.deps.db.prisma.user.create({
    data: { email, firstName: 'Bench', lastName: 'User', role: 'STAFF', emailVerifiedAt: new Date() },
  });
  const post = async (query: string, variables: Record<string, string>) => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    });
    return (await response.json()) as { data?: Record<string, { __typename: string; accessToken?: string }> };
  };
  await post('mutation ($email: String!) { requestLoginCode(email: $email) { __typename } }', { email });
  for (let looks = 0; !delivered; looks++) {
    if (looks > 5000) throw new Error('the sign-in code never arrived');
    await sleep(2);
  }
  const signedIn = await post(
    'mutation ($email: String!, $code: String!) { signInWithCode(email: $email, code: $code) { __typename ... on AuthSession { accessToken } } }',
    { email, code: delivered },
  );
  const token = signedIn.data?.signInWithCode?.accessToken;
  if (!token) throw new Error(`signInWithCode: ${JSON.stringify(signedIn).slice(0, 200)}`);
  return { url, token, userId: user.id };
}

/**
 * node:http + graphql + pg on the same central database: the token verified (jose, the same
 * claims), its session looked up in a Map filled from the session query, the operation parsed
 * and validated, the user read with one SELECT. Same pool size as Onramp's request connection.
 */
async function bareServer(server: BenchServer): Promise<string> {
  const pool = new pg.Pool({ connectionString: databaseUrl(server.serverUrl, DATABASE), max: 5 });
  server.closers.push(() => pool.end());
  const secret = new TextEncoder().encode(JWT_SECRET);
  const sessions = new Map<string, { userId: string; role: string; expiresAt: Date }>();
  const schema = buildSchema('type User { id: ID!, email: String! } type Query { me: User }');
  const rootValue = {
    me: async (_args: unknown, context: { userId: string | null }) => {
      if (!context.userId) return null;
      const { rows } = await pool.query('SELECT id::text AS id, email FROM users WHERE id = $1', [
        context.userId,
      ]);
      return rows[0] ?? null;
    },
  };

  const viewer = async (header: string | undefined): Promise<string | null> => {
    const token = /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
    if (!token) return null;
    const { payload } = await jwtVerify(token, secret, {
      issuer: 'onramp',
      audience: 'onramp',
      algorithms: ['HS256'],
    });
    const sid = String(payload.sid);
    let session = sessions.get(sid);
    if (!session) {
      const { rows } = await pool.query<{ user_id: string; role: string; expires_at: Date }>(
        `SELECT s.user_id::text AS user_id, u.role::text AS role, s.expires_at
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = $1::uuid AND s.revoked_at IS NULL AND s.expires_at > now()`,
        [sid],
      );
      const row = rows[0];
      if (!row) throw new Error('session ended');
      session = { userId: row.user_id, role: row.role, expiresAt: row.expires_at };
      sessions.set(sid, session);
    }
    if (
      session.userId !== payload.sub ||
      session.role !== payload.role ||
      session.expiresAt.getTime() <= Date.now()
    )
      throw new Error('session ended');
    return session.userId;
  };

  const http: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        let status = 200;
        let body: unknown;
        try {
          const { query } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { query: string };
          const document = parse(query);
          const errors = validate(schema, document);
          if (errors.length > 0) {
            status = 400;
            body = { errors };
          } else {
            const userId = await viewer(req.headers.authorization);
            body = await execute({ schema, document, rootValue, contextValue: { userId } });
          }
        } catch (error) {
          status = 401;
          body = { errors: [{ message: (error as Error).message }] };
        }
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      })();
    });
  });
  await new Promise<void>((listening) => http.listen(0, '127.0.0.1', listening));
  server.closers.push(
    () =>
      new Promise<void>((closed) => {
        http.close(() => closed());
        http.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(http.address() as AddressInfo).port}/graphql`;
}
