import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { builder, ErrorInterface } from '../../builder.js';
import { checkCursors, uuidCursor } from '../../cursors.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { ProvisioningFailedError } from './errors.js';
import type { ClinicHealth } from './integrity.js';
import type { ClinicsHealthReport, RepairResult } from './service.js';
import { PROVISIONING_STEP_NAMES } from './step-names.js';

const uuid = z.uuid({ error: 'must be a clinic id (UUID)' });

export const DbStatusEnum = builder.enumType('DbStatus', {
  values: {
    HEALTHY: { description: 'Exists, reachable by its role, every table present, current schema.' },
    DEGRADED: { description: 'Reachable, but tables, grants or migrations are missing.' },
    UNHEALTHY: { description: 'Exists but cannot be reached by its role.' },
    MISSING: { description: 'The database does not exist.' },
    PROVISIONING: { description: 'Still being created; not checked.' },
  } as const,
});

const ClinicStatusEnum = builder.enumType('ClinicStatus', {
  values: ['PROVISIONING', 'PENDING', 'READY', 'FAILED', 'DELETING'] as const,
});
const StepStatusEnum = builder.enumType('ProvisioningStepStatus', {
  values: ['STARTED', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK', 'SKIPPED'] as const,
});
const RunStatusEnum = builder.enumType('ProvisioningRunStatus', {
  values: ['RUNNING', 'SUCCEEDED', 'FAILED', 'ROLLED_BACK'] as const,
});
const RunKindEnum = builder.enumType('ProvisioningRunKind', {
  values: ['REGISTER', 'REPAIR', 'UPGRADE', 'DELETE', 'ONBOARDING'] as const,
});
export const StepNameEnum = builder.enumType('ProvisioningStepName', { values: PROVISIONING_STEP_NAMES });

export const ClinicHealthRef = builder.objectRef<ClinicHealth>('ClinicHealth').implement({
  fields: (t) => ({
    clinicId: t.exposeID('clinicId'),
    name: t.exposeString('name'),
    server: t.exposeString('server', {
      description: '`host:port` of the PostgreSQL server holding the database.',
    }),
    subdomain: t.exposeString('subdomain'),
    dbStatus: t.field({ type: DbStatusEnum, resolve: (health) => health.dbStatus }),
    tablesCount: t.exposeInt('tablesCount'),
    expectedTables: t.exposeInt('expectedTables'),
    missingTables: t.exposeStringList('missingTables'),
    schemaVersion: t.exposeString('schemaVersion', { nullable: true }),
    errors: t.exposeStringList('errors'),
    lastCheck: t.expose('lastCheck', { type: 'DateTime' }),
  }),
});

const ClinicsHealthReportRef = builder.objectRef<ClinicsHealthReport>('ClinicsHealthReport').implement({
  fields: (t) => ({
    checkedAt: t.expose('checkedAt', { type: 'DateTime' }),
    total: t.exposeInt('total'),
    healthy: t.exposeInt('healthy'),
    unhealthy: t.exposeInt('unhealthy'),
    clinics: t.field({ type: [ClinicHealthRef], resolve: (report) => report.clinics }),
  }),
});

export const ClinicRef = builder.prismaObject('Clinic', {
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    country: t.exposeString('country'),
    subdomain: t.exposeString('subdomain'),
    status: t.expose('status', { type: ClinicStatusEnum }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    // Where and how the database lives: platform operators only.
    databaseName: t.exposeString('databaseName', { authScopes: { operator: true } }),
    databaseServer: t.exposeString('databaseServer', { authScopes: { operator: true } }),
    schemaVersion: t.exposeString('schemaVersion', { nullable: true, authScopes: { operator: true } }),
    health: t.field({
      type: ClinicHealthRef,
      authScopes: { operator: true },
      description: 'Checks the database now (one connection).',
      resolve: (clinic, _args, context) => context.deps.provisioning.checkClinic(clinic.id),
    }),
  }),
});

const ProvisioningStepRef = builder.prismaObject('ProvisioningStep', {
  fields: (t) => ({
    name: t.exposeString('name'),
    status: t.expose('status', { type: StepStatusEnum }),
    attempt: t.exposeInt('attempt'),
    error: t.exposeString('error', { nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    durationMs: t.exposeInt('durationMs', { nullable: true }),
  }),
});

builder.prismaObject('ProvisioningRun', {
  authScopes: { operator: true },
  fields: (t) => ({
    id: t.exposeID('id'),
    clinicId: t.exposeID('clinicId'),
    kind: t.expose('kind', { type: RunKindEnum }),
    status: t.expose('status', { type: RunStatusEnum }),
    attempt: t.exposeInt('attempt'),
    error: t.exposeString('error', { nullable: true }),
    startedAt: t.expose('startedAt', { type: 'DateTime' }),
    finishedAt: t.expose('finishedAt', { type: 'DateTime', nullable: true }),
    durationMs: t.int({
      nullable: true,
      resolve: (run) => (run.finishedAt ? run.finishedAt.getTime() - run.startedAt.getTime() : null),
    }),
    steps: t.relation('steps', {
      query: { orderBy: [{ startedAt: 'asc' }, { attempt: 'asc' }] },
      type: ProvisioningStepRef,
    }),
  }),
});

interface ProvisioningMetricsShape {
  successes: number;
  failures: number;
  retries: number;
  p50Ms: number | null;
  p95Ms: number | null;
}

const ProvisioningMetricsRef = builder.objectRef<ProvisioningMetricsShape>('ProvisioningMetrics').implement({
  fields: (t) => ({
    successes: t.exposeInt('successes'),
    failures: t.exposeInt('failures'),
    retries: t.exposeInt('retries', { description: 'Runs that were a second or later attempt.' }),
    p50Ms: t.exposeInt('p50Ms', {
      nullable: true,
      description: 'Median duration of successful registrations.',
    }),
    p95Ms: t.exposeInt('p95Ms', { nullable: true }),
  }),
});

export interface ProvisioningEventShape {
  runId: string;
  clinicId: string;
  step: string;
  status: 'STARTED' | 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | 'SKIPPED';
  attempt: number;
  message: string | null;
  at: Date | string;
  durationMs: number | null;
}

const ProvisioningEventRef = builder.objectRef<ProvisioningEventShape>('ProvisioningEvent').implement({
  fields: (t) => ({
    runId: t.exposeID('runId'),
    clinicId: t.exposeID('clinicId'),
    step: t.exposeString('step'),
    status: t.field({ type: StepStatusEnum, resolve: (event) => event.status }),
    attempt: t.exposeInt('attempt'),
    message: t.exposeString('message', { nullable: true }),
    at: t.field({ type: 'DateTime', resolve: (event) => new Date(event.at) }),
    durationMs: t.exposeInt('durationMs', { nullable: true }),
  }),
});

builder.queryFields((t) => ({
  clinic: t.prismaField({
    type: 'Clinic',
    nullable: true,
    description: 'Operators see any clinic; clinic admins their own.',
    authScopes: (_root, args) => ({ operator: true, clinicAdmin: String(args.id) }),
    args: { id: t.arg.id({ required: true, validate: uuid }) },
    resolve: (query, _root, { id }, context) =>
      context.scoped((tx) => tx.clinic.findUnique({ ...query, where: { id } })),
  }),
  clinics: t.prismaConnection({
    type: 'Clinic',
    cursor: 'id',
    authScopes: { operator: true },
    args: {
      status: t.arg({ type: ClinicStatusEnum }),
      health: t.arg({ type: DbStatusEnum, description: 'Checks every clinic first (bounded concurrency).' }),
    },
    resolve: async (query, _root, args, context) => {
      checkCursors(args, uuidCursor);
      let ids: string[] | undefined;
      if (args.health) {
        const report = await context.deps.provisioning.clinicsHealth();
        ids = report.clinics
          .filter((health) => health.dbStatus === args.health)
          .map((health) => health.clinicId);
      }
      return context.scoped((tx) =>
        tx.clinic.findMany({
          ...query,
          where: { ...(args.status ? { status: args.status } : {}), ...(ids ? { id: { in: ids } } : {}) },
          orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
        }),
      );
    },
  }),
  clinicsHealth: t.field({
    type: ClinicsHealthReportRef,
    authScopes: { operator: true },
    resolve: (_root, _args, context) => context.deps.provisioning.clinicsHealth(),
  }),
  provisioningRuns: t.prismaField({
    type: ['ProvisioningRun'],
    authScopes: { operator: true },
    description:
      "Newest first: one clinic's runs, or every clinic's without `clinicId` (the console's metrics chart).",
    args: {
      clinicId: t.arg.id({ validate: uuid }),
      kind: t.arg({ type: RunKindEnum }),
      first: t.arg.int({ defaultValue: 20, validate: z.number().int().min(1).max(200) }),
    },
    resolve: (query, _root, args, context) =>
      context.scoped((tx) =>
        tx.provisioningRun.findMany({
          ...query,
          where: {
            ...(args.clinicId ? { clinicId: String(args.clinicId) } : {}),
            ...(args.kind ? { kind: args.kind } : {}),
          },
          orderBy: [{ startedAt: 'desc' }, { id: 'desc' }],
          take: args.first ?? 20,
        }),
      ),
  }),
  provisioningMetrics: t.field({
    type: ProvisioningMetricsRef,
    authScopes: { operator: true },
    resolve: async (_root, _args, context) => {
      const [row] = await context.scoped(
        (tx) => tx.$queryRaw<
          { successes: number; failures: number; retries: number; p50: number | null; p95: number | null }[]
        >`
        SELECT count(*) FILTER (WHERE status = 'SUCCEEDED')::int AS successes,
               count(*) FILTER (WHERE status IN ('FAILED', 'ROLLED_BACK'))::int AS failures,
               count(*) FILTER (WHERE attempt > 1)::int AS retries,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)
                 FILTER (WHERE status = 'SUCCEEDED' AND kind = 'REGISTER') AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at) * 1000)
                 FILTER (WHERE status = 'SUCCEEDED' AND kind = 'REGISTER') AS p95
          FROM provisioning_runs`,
      );
      const round = (value: number | null | undefined) =>
        value === null || value === undefined ? null : Math.round(Number(value));
      return {
        successes: row?.successes ?? 0,
        failures: row?.failures ?? 0,
        retries: row?.retries ?? 0,
        p50Ms: round(row?.p50),
        p95Ms: round(row?.p95),
      };
    },
  }),
}));

const RepairClinicSuccessRef = builder.objectRef<RepairResult>('RepairClinicSuccess').implement({
  fields: (t) => ({
    before: t.field({ type: ClinicHealthRef, resolve: (result) => result.before }),
    after: t.field({ type: ClinicHealthRef, resolve: (result) => result.after }),
    actions: t.exposeStringList('actions'),
    alreadyHealthy: t.exposeBoolean('alreadyHealthy'),
  }),
});

const DeleteClinicSuccessRef = builder.objectRef<{ clinicId: string }>('DeleteClinicSuccess').implement({
  fields: (t) => ({ clinicId: t.exposeID('clinicId') }),
});

const InjectFaultSuccessRef = builder
  .objectRef<{ pending: Record<string, number> }>('InjectFaultSuccess')
  .implement({
    fields: (t) => ({
      pending: t.field({
        type: 'JSON',
        description: 'Faults still to fire, by step.',
        resolve: (result) => result.pending,
      }),
    }),
  });

builder.objectType(ProvisioningFailedError, {
  name: 'ProvisioningFailedError',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ProvisioningFailedError,
  fields: (t) => ({
    step: t.exposeString('step'),
    runId: t.exposeID('runId'),
  }),
});

builder.mutationFields((t) => ({
  repairClinic: t.field({
    type: RepairClinicSuccessRef,
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid }) },
    resolve: (_root, { clinicId }, context) => context.deps.provisioning.repairClinic(String(clinicId)),
  }),
  deleteClinic: t.field({
    type: DeleteClinicSuccessRef,
    authScopes: { operator: true },
    errors: { types: [NotFoundError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid }) },
    resolve: async (_root, { clinicId }, context) => {
      await context.deps.provisioning.deleteClinic(String(clinicId));
      return { clinicId: String(clinicId) };
    },
  }),
  injectFault: t.field({
    type: InjectFaultSuccessRef,
    description: 'Development and test only: the next `times` runs of `step` fail.',
    authScopes: { faultInjection: true },
    args: {
      step: t.arg({ type: StepNameEnum, required: true }),
      times: t.arg.int({ defaultValue: 1, validate: z.number().int().min(1).max(10) }),
    },
    resolve: (_root, { step, times }, context) => ({
      pending: context.deps.provisioning.injectFault(step, times ?? 1),
    }),
  }),
}));

builder.subscriptionFields((t) => ({
  provisioningProgress: t.field({
    type: ProvisioningEventRef,
    description: 'Every step transition of provisioning runs; of one clinic when `clinicId` is given.',
    authScopes: { operator: true },
    args: { clinicId: t.arg.id({ validate: uuid }) },
    subscribe: (_root, { clinicId }, context) =>
      pipe(
        context.deps.events.pubsub.subscribe('provisioning'),
        filter((event) => !clinicId || event.clinicId === String(clinicId)),
      ),
    resolve: (event) => event as ProvisioningEventShape,
  }),
  clinicHealthChanged: t.field({
    type: ClinicHealthRef,
    description: "A clinic database's health status changed.",
    authScopes: { operator: true },
    subscribe: (_root, _args, context) => context.deps.events.pubsub.subscribe('clinicHealth'),
    resolve: (health) => ({
      ...(health as unknown as ClinicHealth),
      lastCheck: new Date(String(health.lastCheck)),
    }),
  }),
}));
