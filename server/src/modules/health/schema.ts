import { builder } from '../../builder.js';
import { checkHealth, type Health, type HealthCheck } from './service.js';

const HealthStatusEnum = builder.enumType('HealthStatus', {
  values: {
    OK: { description: 'Every dependency answers.' },
    DEGRADED: { description: 'A dependency failed.' },
  },
});

const HealthCheckRef = builder.objectRef<HealthCheck>('HealthCheck').implement({
  fields: (t) => ({
    name: t.exposeString('name'),
    ok: t.exposeBoolean('ok'),
    latencyMs: t.exposeInt('latencyMs'),
  }),
});

const HealthRef = builder.objectRef<Health>('Health').implement({
  fields: (t) => ({
    status: t.field({ type: HealthStatusEnum, resolve: (health) => health.status }),
    uptimeSeconds: t.exposeInt('uptimeSeconds'),
    checks: t.field({ type: [HealthCheckRef], resolve: (health) => health.checks }),
  }),
});

builder.queryField('health', (t) =>
  t.field({
    type: HealthRef,
    description: 'Liveness of this server and its central database. Public.',
    resolve: (_root, _args, context) => checkHealth(context.deps),
  }),
);
