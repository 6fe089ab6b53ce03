/**
 * Cluster benchmark: registrations per second through HAProxy with three instances of the built
 * server versus one, on the same machine, the same databases and the same load balancer (the
 * cluster of server/test/cluster.ts: Redis, a central and two clinic PostgreSQL servers). The
 * one-instance rounds take the other two out of HAProxy's rotation; rounds alternate so both
 * see the same machine. See bench/README.md.
 */
import { type Cluster, graphql, startCluster } from '../server/test/cluster.js';
import { REGISTER, registrationInput } from '../server/test/registration-flow.js';
import {
  type BenchOptions,
  inParallel,
  judge,
  latencyRow,
  median,
  type Row,
  type Suite,
  type SuiteResult,
} from './lib.js';

/** Concurrent HTTP clients of each burst, as in the registration suite. */
const CLIENTS = 8;
/** Timed rounds per configuration (after one untimed warm-up of each). */
const ROUNDS = 2;

const TARGET = { op: '>=', value: 1, text: '≥ 1.00× 1 instance' } as const;

export const cluster: Suite = { name: 'cluster', run };

async function run(options: BenchOptions): Promise<SuiteResult> {
  options.log('starting HAProxy, 3 instances, Redis and 3 PostgreSQL servers');
  const started = performance.now();
  const running = await startCluster({
    env: {
      REGISTRATION_IP_LIMIT: '1000000/1h',
      REGISTRATION_TOTAL_LIMIT: '1000000/1h',
      CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    },
  });
  const setupSeconds = (performance.now() - started) / 1000;
  try {
    const rates: Record<1 | 3, number[]> = { 1: [], 3: [] };
    const latencies: Record<1 | 3, number[]> = { 1: [], 3: [] };
    const failures: Record<1 | 3, number> = { 1: 0, 3: 0 };
    const reasons = new Set<string>();
    for (let round = 0; round <= ROUNDS; round++) {
      for (const instances of round % 2 === 0 ? ([1, 3] as const) : ([3, 1] as const)) {
        await useInstances(running, instances);
        const count = round === 0 ? Math.min(8, options.registrations) : options.registrations;
        options.log(
          `${round === 0 ? 'warm-up' : `round ${round}`}: ${count} registrations, ${instances} instance(s)`,
        );
        const burst = await registrationBurst(running, count, reasons);
        if (round === 0) continue;
        rates[instances].push(burst.perSecond);
        latencies[instances].push(...burst.latenciesMs);
        failures[instances] += burst.failures;
      }
    }
    await useInstances(running, 3);
    const one = median(rates[1]);
    const three = median(rates[3]);
    const rows: Row[] = [
      latencyRow('registrations, 1 instance', latencies[1], {
        ratioText: `${one.toFixed(1)}/s`,
      }),
      judge(
        latencyRow('registrations, 3 instances', latencies[3], {
          ratio: three / one,
          ratioText: `${(three / one).toFixed(2)}× (${three.toFixed(1)}/s)`,
          target: TARGET,
        }),
      ),
    ];
    return {
      rows,
      notes: [
        `${CLIENTS} clients through HAProxy, ${options.registrations} registrations per burst, ${ROUNDS} timed rounds per configuration (median rate); setup ${setupSeconds.toFixed(0)} s`,
        `rates per round: 1 instance ${rates[1].map((rate) => rate.toFixed(1)).join(', ')}/s; 3 instances ${rates[3].map((rate) => rate.toFixed(1)).join(', ')}/s`,
        `failed registrations: 1 instance ${failures[1]}, 3 instances ${failures[3]}${reasons.size > 0 ? ` (${[...reasons].join(', ')})` : ''}`,
        'Same machine: three instances share its cores with PostgreSQL, so the target is no loss from coordination, not a speed-up.',
      ],
      meta: { rates, failures, clients: CLIENTS, rounds: ROUNDS },
    };
  } finally {
    await running.stop();
  }
}

async function useInstances(running: Cluster, count: number): Promise<void> {
  for (const [i, instance] of running.instances.entries()) await running.route(instance.name, i < count);
}

async function registrationBurst(
  running: Cluster,
  count: number,
  reasons: Set<string>,
): Promise<{ perSecond: number; latenciesMs: number[]; failures: number }> {
  const latenciesMs: number[] = [];
  let failures = 0;
  const started = performance.now();
  await inParallel(
    Array.from({ length: count }, () => registrationInput()),
    CLIENTS,
    async (input) => {
      const before = performance.now();
      const answer = await graphql<{ registerClinic: { __typename: string } }>(running.url, REGISTER, {
        input,
      });
      latenciesMs.push(performance.now() - before);
      const typename = answer.data?.registerClinic.__typename;
      if (typename !== 'RegisterClinicSuccess') {
        failures += 1;
        reasons.add(typename ?? String(answer.errors?.[0]?.extensions?.code ?? answer.status));
      }
    },
  );
  return { perSecond: count / ((performance.now() - started) / 1000), latenciesMs, failures };
}
