import type { Deps } from '../../context.js';

export type HealthStatus = 'OK' | 'DEGRADED';

export interface HealthCheck {
  name: string;
  ok: boolean;
  latencyMs: number;
}

export interface Health {
  status: HealthStatus;
  uptimeSeconds: number;
  checks: HealthCheck[];
}

/**
 * What `health` and `/readyz` report: the central database reachable and fully migrated, and the
 * event bus subscribed (until it is, live subscriptions and session ends would miss events).
 */
export async function checkHealth(
  deps: Pick<Deps, 'db' | 'logger' | 'events' | 'startedAt'>,
): Promise<Health> {
  const started = performance.now();
  const ok = await deps.db.checkReady().then(
    () => true,
    (error: unknown) => {
      deps.logger.warn({ err: error }, 'central database not ready');
      return false;
    },
  );
  const checks = [
    { name: 'central_database', ok, latencyMs: Math.round(performance.now() - started) },
    { name: 'event_bus', ok: deps.events.connected(), latencyMs: 0 },
  ];
  return {
    status: checks.every((check) => check.ok) ? 'OK' : 'DEGRADED',
    uptimeSeconds: Math.floor((Date.now() - deps.startedAt.getTime()) / 1000),
    checks,
  };
}
