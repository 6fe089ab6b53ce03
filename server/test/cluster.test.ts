/**
 * Several instances, proven (README, "Running several instances"): HAProxy in front of three
 * instances of the built server, Redis, a central PostgreSQL and two clinic servers (see
 * cluster.ts). Every request goes through the load balancer, as a client's would; instances are
 * read directly only for their metrics.
 */
import { type Client, createClient } from 'graphql-ws';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Cluster, graphql, metricValue, startCluster } from './cluster.js';
import { REGISTER, registrationInput } from './registration-flow.js';

const LEASE_SECONDS = 4;

const SIGN_IN = `mutation ($email: String!, $password: String!) {
  signInWithPassword(email: $email, password: $password) {
    __typename
    ... on AuthSession { accessToken }
    ... on Error { code }
  }
}`;

interface Registered {
  status: number;
  instance: string | undefined;
  clinicId?: string;
  email: string;
  typename?: string;
  code?: string;
  error?: string;
}

describe('three instances behind a load balancer', () => {
  let cluster: Cluster;
  let central: pg.Client;
  let operator: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    cluster = await startCluster({
      env: {
        CLINIC_HEALTH_INTERVAL_SECONDS: '1',
        PROVISIONING_LEASE_SECONDS: String(LEASE_SECONDS),
        REGISTRATION_IP_LIMIT: '20/1h',
        REGISTRATION_TOTAL_LIMIT: '1000/1h',
        CLINIC_POOL_SIZE: '1',
      },
    });
    central = new pg.Client({ connectionString: cluster.centralUrl });
    await central.connect();
    operator = await signInOperator(cluster);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await central?.end();
    await cluster?.stop();
  });

  const register = async (from: string, overrides: Record<string, unknown> = {}): Promise<Registered> => {
    const input = registrationInput(overrides);
    try {
      const answer = await graphql<{
        registerClinic: { __typename: string; clinic?: { id: string }; code?: string };
      }>(cluster.url, REGISTER, { input }, { from });
      const result = answer.data?.registerClinic;
      return {
        status: answer.status,
        instance: answer.instance,
        email: input.adminEmail,
        clinicId: result?.clinic?.id,
        typename: result?.__typename,
        code: result?.code ?? (answer.errors?.[0]?.extensions?.code as string | undefined),
      };
    } catch (error) {
      // The connection of a request in flight on a killed instance.
      return { status: 0, instance: undefined, email: input.adminEmail, error: String(error) };
    }
  };

  const burst = async (count: number, parallel: number, from: string): Promise<Registered[]> => {
    const results: Registered[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < count) {
          next += 1;
          results.push(await register(from));
        }
      }),
    );
    return results;
  };

  /** A console subscription through the load balancer, with the instance it landed on. */
  const subscribeProgress = async () => {
    let instance: string | undefined;
    const events: { clinicId: string; step: string; status: string }[] = [];
    const client = createClient({
      url: `${cluster.url.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: class extends WebSocket {
        constructor(address: string, protocols?: string | string[]) {
          super(address, protocols);
          this.once('upgrade', (response) => {
            instance = response.headers['x-onramp-instance'] as string | undefined;
          });
        }
      },
      connectionParams: { authorization: operator },
      retryAttempts: 0,
    });
    clients.push(client);
    const started = new Promise<void>((done) => client.on('connected', () => done()));
    client.subscribe<{ provisioningProgress: { clinicId: string; step: string; status: string } }>(
      { query: 'subscription { provisioningProgress { clinicId step status } }' },
      {
        next: (value) => {
          if (value.data) events.push(value.data.provisioningProgress);
        },
        error: () => {},
        complete: () => {},
      },
    );
    await started;
    // The server registers the subscription after the socket's acknowledgement.
    await new Promise((done) => setTimeout(done, 500));
    return { instance: () => instance, events };
  };

  /**
   * What is not settled: each clinic that is not READY and each RUNNING run, with its clinic's
   * subdomain and status and the latest run (kind, status, error).
   */
  const unsettled = async () => {
    const { rows } = await central.query<{ subdomain: string | null; status: string; latestRun: string }>(
      `WITH latest AS (
         SELECT DISTINCT ON (r.clinic_id) r.clinic_id, r.kind || ' ' || r.status || coalesce(': ' || r.error, '') AS run
           FROM provisioning_runs r WHERE r.clinic_id IS NOT NULL ORDER BY r.clinic_id, r.started_at DESC)
       SELECT c.subdomain, c.status::text AS status, coalesce(l.run, 'none') AS "latestRun"
         FROM clinics c LEFT JOIN latest l ON l.clinic_id = c.id
        WHERE c.status <> 'READY'
          OR EXISTS (SELECT 1 FROM provisioning_runs r WHERE r.clinic_id = c.id AND r.status = 'RUNNING')
       UNION ALL
       SELECT NULL, 'no clinic', r.kind || ' ' || r.status || coalesce(': ' || r.error, '')
         FROM provisioning_runs r
        WHERE r.status = 'RUNNING' AND NOT EXISTS (SELECT 1 FROM clinics c WHERE c.id = r.clinic_id)
        ORDER BY 1`,
    );
    return rows;
  };

  const sweeps = () =>
    Promise.all(
      cluster.instances.map((instance) =>
        metricValue(instance.url, 'onramp_clinic_health_sweeps_total').catch(() => 0),
      ),
    );

  it('spreads registrations over the instances and both clinic servers; a subscriber on one instance sees every event of the others', async () => {
    const subscriber = await subscribeProgress();
    const results = await burst(9, 3, '127.0.0.1');
    expect(results.map((result) => result.typename)).toEqual(Array(9).fill('RegisterClinicSuccess'));

    const servedBy = new Set(results.map((result) => result.instance));
    expect([...servedBy].sort()).toEqual(['a', 'b', 'c']);
    // The work ran where the load balancer sent it, not only the answer.
    for (const instance of cluster.instances) {
      expect(
        await metricValue(instance.url, 'onramp_provisioning_runs_total{kind="REGISTER",outcome="success"}'),
      ).toBeGreaterThan(0);
    }
    const { rows } = await central.query<{ address: string; n: number }>(
      `SELECT s.address, count(*)::int AS n FROM clinics c
         JOIN database_servers s ON s.id = c.database_server_id GROUP BY 1 ORDER BY 1`,
    );
    expect(rows.map((row) => row.address).sort()).toEqual(
      cluster.clinicServerUrls.map((url) => new URL(url).host).sort(),
    );

    const home = subscriber.instance();
    expect(home).toMatch(/^[abc]$/);
    const fromOthers = results.filter((result) => result.instance !== home);
    expect(new Set(fromOthers.map((result) => result.instance)).size).toBe(2);
    await waitFor(() =>
      results.every((result) =>
        subscriber.events.some(
          (event) =>
            event.clinicId === result.clinicId && event.step === 'commit' && event.status === 'SUCCEEDED',
        ),
      ),
    );
  });

  it('holds rate limits and lockouts across instances under a parallel burst', {
    timeout: 30_000,
  }, async () => {
    const [taken] = await burst(1, 1, '127.0.0.3');
    expect(taken?.typename).toBe('RegisterClinicSuccess');
    // 45 attempts at once from one address (the limit is 20 an hour), each counted before any
    // work: with counters per instance, all 45 would pass.
    const attempts = await Promise.all(
      Array.from({ length: 45 }, () => register('127.0.0.9', { adminEmail: taken?.email })),
    );
    const codes = attempts.map((attempt) => attempt.code ?? attempt.typename);
    expect(codes.filter((code) => code === 'EMAIL_TAKEN')).toHaveLength(20);
    expect(codes.filter((code) => code === 'RATE_LIMITED')).toHaveLength(25);
    expect(new Set(attempts.map((attempt) => attempt.instance)).size).toBe(3);

    // Wrong passwords for one account from 15 addresses at once: at most 5 are evaluated.
    const wrong = await Promise.all(
      Array.from({ length: 15 }, (_, i) =>
        graphql<{ signInWithPassword: { __typename: string; code?: string } }>(
          cluster.url,
          SIGN_IN,
          { email: taken?.email, password: 'not the password at all' },
          { from: `127.0.1.${i + 1}` },
        ),
      ),
    );
    const outcomes = wrong.map(
      (answer) => answer.data?.signInWithPassword?.code ?? answer.errors?.[0]?.extensions?.code,
    );
    expect(outcomes.filter((code) => code !== 'RATE_LIMITED').length).toBeLessThanOrEqual(5);
    expect(new Set(wrong.map((answer) => answer.instance)).size).toBe(3);
    // Locked on every instance, the right password included.
    for (let i = 0; i < 3; i++) {
      const right = await graphql<{ signInWithPassword: { __typename: string } }>(
        cluster.url,
        SIGN_IN,
        { email: taken?.email, password: 'a sturdy passphrase 42' },
        { from: '127.0.2.1' },
      );
      expect(right.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    }
  });

  it('runs exactly one health sweep per period in the whole cluster', async () => {
    const before = await sweeps();
    const seconds = 5;
    await new Promise((done) => setTimeout(done, seconds * 1000));
    const after = await sweeps();
    const ran = after.map((count, i) => count - (before[i] ?? 0));
    expect(ran.filter((count) => count > 0)).toHaveLength(1);
    const total = ran.reduce((sum, count) => sum + count, 0);
    // A loaded machine may delay a tick or make a sweep outlast its period (then skipped);
    // without the lease all three instances sweep, 3 × seconds.
    expect(total).toBeGreaterThanOrEqual(2);
    expect(total).toBeLessThanOrEqual(seconds + 1);
  });

  it('survives kill -9 of an instance mid-burst: no zombie, its runs undone, traffic routed around it', {
    timeout: 90_000,
  }, async () => {
    // The victim is the instance sweeping health, so the sweep must move too.
    const counts = await sweeps();
    await new Promise((done) => setTimeout(done, 1500));
    const later = await sweeps();
    const sweeper = later.findIndex((count, i) => count > (counts[i] ?? 0));
    const victim = cluster.instances[sweeper === -1 ? 0 : sweeper];
    if (!victim) throw new Error('no instance');

    const running = burst(15, 6, '127.0.0.2');
    await waitFor(
      async () => (await metricValue(victim.url, 'onramp_provisioning_runs_in_progress')) >= 2,
      20_000,
      5,
    );
    await victim.kill();
    const results = await running;

    // Only requests already on the victim failed; everything else went to the others.
    const failed = results.filter((result) => result.typename !== 'RegisterClinicSuccess');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThanOrEqual(6);
    for (const result of failed)
      expect(result.instance === undefined || result.instance === victim.name).toBe(true);
    await waitFor(async () =>
      (await cluster.backends()).some(
        (state) => state.name === victim.name && state.status.startsWith('DOWN'),
      ),
    );
    const after = await burst(6, 3, '127.0.0.4');
    expect(after.map((result) => result.typename)).toEqual(Array(6).fill('RegisterClinicSuccess'));
    expect(after.some((result) => result.instance === victim.name)).toBe(false);

    // Once the lease lapses the others finish or undo the victim's runs: every run is over and
    // every clinic READY (a rolled-back registration leaves no clinic at all).
    await settle(unsettled, (LEASE_SECONDS * 3 + 10) * 1000);
    expect(await unsettled()).toEqual([]);
    const { rows: abandoned } = await central.query<{ status: string }>(
      "SELECT status FROM provisioning_runs WHERE error LIKE 'abandoned%'",
    );
    expect(abandoned.length).toBeGreaterThan(0);
    const report = await graphql<{ zombieReport: { accounts: unknown[]; orphans: unknown[] } }>(
      cluster.url,
      '{ zombieReport { accounts { clinicId reason } orphans { server name kind } } }',
      {},
      { authorization: operator },
    );
    expect(report.data?.zombieReport).toEqual({ accounts: [], orphans: [] });

    // The health sweep moved to a surviving instance.
    const survivors = cluster.instances.filter((instance) => instance !== victim);
    const sweepsOf = () =>
      Promise.all(
        survivors.map((instance) => metricValue(instance.url, 'onramp_clinic_health_sweeps_total')),
      );
    const start = await sweepsOf();
    await waitFor(async () => (await sweepsOf()).some((count, i) => count > (start[i] ?? 0)), 10_000);
  });
});

/** The bootstrapped super-admin, signed in with an e-mail code read from the SMTP sink. */
async function signInOperator(cluster: Cluster): Promise<string> {
  const email = 'admin@onramp.localhost';
  await graphql(cluster.url, 'mutation ($e: String!) { requestLoginCode(email: $e) { __typename } }', {
    e: email,
  });
  const mail = await cluster.smtp.waitFor((message) => JSON.stringify(message.to ?? '').includes(email));
  const code = /\b(\d{6})\b/.exec(mail.text ?? '')?.[1];
  const answer = await graphql<{ signInWithCode: { accessToken?: string } }>(
    cluster.url,
    'mutation ($e: String!, $c: String!) { signInWithCode(email: $e, code: $c) { ... on AuthSession { accessToken } } }',
    { e: email, c: code },
  );
  const token = answer.data?.signInWithCode.accessToken;
  if (!token) throw new Error(`operator sign-in failed: ${JSON.stringify(answer)}`);
  return `Bearer ${token}`;
}

/** Waits until `pending` finds nothing, or the time is up (the caller asserts what is left). */
async function settle(pending: () => Promise<unknown[]>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await pending()).length > 0 && Date.now() < deadline)
    await new Promise((done) => setTimeout(done, 200));
}

async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((done) => setTimeout(done, everyMs));
  }
}
