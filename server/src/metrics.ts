import { createHash, timingSafeEqual } from 'node:crypto';
import type { DocumentNode, OperationDefinitionNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  registry: Registry;
  graphqlDuration: Histogram<'operation_name' | 'operation_type' | 'outcome'>;
  provisioningRuns: Counter<'kind' | 'outcome'>;
  provisioningStepDuration: Histogram<'step' | 'outcome'>;
  /** Runs this instance is executing now (a killed instance's are left to the reconciler). */
  provisioningRunsInProgress: Gauge;
  /** Background health sweeps this instance ran (one instance per period, cluster-wide). */
  healthSweeps: Counter;
}

/** One registry per app instance, so tests can build several apps in one process. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'onramp_' });
  const graphqlDuration = new Histogram({
    name: 'onramp_graphql_operation_duration_seconds',
    help: 'Duration of GraphQL operations (parse and validate excluded)',
    labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const provisioningRuns = new Counter({
    name: 'onramp_provisioning_runs_total',
    help: 'Provisioning runs by kind and outcome (success, failure)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  });
  const provisioningStepDuration = new Histogram({
    name: 'onramp_provisioning_step_duration_seconds',
    help: 'Duration of provisioning steps',
    labelNames: ['step', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const provisioningRunsInProgress = new Gauge({
    name: 'onramp_provisioning_runs_in_progress',
    help: 'Provisioning runs this instance is executing',
    registers: [registry],
  });
  const healthSweeps = new Counter({
    name: 'onramp_clinic_health_sweeps_total',
    help: 'Background health sweeps this instance ran',
    registers: [registry],
  });
  return {
    registry,
    graphqlDuration,
    provisioningRuns,
    provisioningStepDuration,
    provisioningRunsInProgress,
    healthSweeps,
  };
}

/**
 * Whether a scrape with this `Authorization` header may read /metrics: with METRICS_TOKEN set,
 * only its bearer; without one, anyone outside production and no one in production (process
 * and operation metrics tell an attacker what runs and how busy it is).
 */
export function mayScrapeMetrics(
  authorization: string | undefined,
  config: { env: string; metricsToken: string | undefined },
): boolean {
  if (!config.metricsToken) return config.env !== 'production';
  const given = /^Bearer (.+)$/.exec(authorization ?? '')?.[1] ?? '';
  // Compared as digests: equal lengths for timingSafeEqual, and no early exit on a prefix.
  const digest = (value: string) => createHash('sha256').update(value).digest();
  return timingSafeEqual(digest(given), digest(config.metricsToken));
}

/** Distinct operation names labelled before the rest are counted as "other". */
const MAX_OPERATION_NAMES = 500;

/**
 * Times every executed operation. Operation names come from clients, so unknown or overly long
 * names are folded to keep label cardinality bounded.
 */
export function useOperationMetrics(metrics: Metrics): Plugin {
  const seen = new Set<string>();
  const labelFor = (name: string) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(name)) return 'invalid';
    if (seen.has(name)) return name;
    if (seen.size >= MAX_OPERATION_NAMES) return 'other';
    seen.add(name);
    return name;
  };
  return {
    onExecute({ args }) {
      const started = performance.now();
      const operation = (args.document as DocumentNode).definitions.find(
        (definition): definition is OperationDefinitionNode => definition.kind === 'OperationDefinition',
      );
      const labels = {
        operation_name: labelFor(operation?.name?.value ?? args.operationName ?? 'anonymous'),
        operation_type: operation?.operation ?? 'unknown',
      };
      return {
        onExecuteDone({ result }) {
          const outcome = 'errors' in result && result.errors?.length ? 'error' : 'ok';
          metrics.graphqlDuration.observe({ ...labels, outcome }, (performance.now() - started) / 1000);
        },
      };
    },
  };
}
