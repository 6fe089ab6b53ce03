import { builder } from '../../builder.js';
import { checkHealth, type Health, type HealthCheck } from './service.js';

const HealthStatusEnum = builder.enumType('HealthStatus', {
  description: 'Overall state of this server: OK only when every check passes.',
  values: {
    OK: { description: 'Every dependency answers.' },
    DEGRADED: { description: 'A dependency failed.' },
  },
});

const HealthCheckRef = builder.objectRef<HealthCheck>('HealthCheck').implement({
  description: 'One dependency probed by `health`.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'The dependency: `central_database` or `event_bus`.' }),
    ok: t.exposeBoolean('ok', {
      description: 'Whether it answered (the database: reachable and fully migrated).',
    }),
    latencyMs: t.exposeInt('latencyMs', {
      description: 'How long the probe took, in milliseconds (0 for the event bus).',
    }),
  }),
});

const HealthRef = builder.objectRef<Health>('Health').implement({
  description: 'Liveness of this server, as `/readyz` also reports it.',
  fields: (t) => ({
    status: t.field({
      type: HealthStatusEnum,
      description: 'OK when every check passed.',
      resolve: (health) => health.status,
    }),
    uptimeSeconds: t.exposeInt('uptimeSeconds', {
      description: 'Seconds since this server process started.',
    }),
    checks: t.field({
      type: [HealthCheckRef],
      description: 'Each dependency probed.',
      resolve: (health) => health.checks,
    }),
  }),
});

builder.queryField('health', (t) =>
  t.field({
    type: HealthRef,
    description: 'Liveness of this server and its central database. Public.',
    resolve: (_root, _args, context) => checkHealth(context.deps),
  }),
);
