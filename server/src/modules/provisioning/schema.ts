import { X509Certificate } from 'node:crypto';
import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { builder, ErrorInterface } from '../../builder.js';
import type { Context } from '../../context.js';
import { checkCursors, uuidCursor } from '../../cursors.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { User } from '../../generated/central/client.js';
import { batchLoad } from '../../loader.js';
import type { IssuedCertificate } from '../certificates/issuer.js';
import { clinicFqdn, type DnsRecord } from '../dns/provider.js';
// A cycle (registration's schema uses ClinicRef), safe because Pothos reads refs lazily in `fields`.
import { UserRef } from '../registration/schema.js';
import { ProvisioningFailedError } from './errors.js';
import type { ClinicHealth } from './integrity.js';
import { recordedEvents, replaying } from './replay.js';
import type { ClinicsHealthReport, RepairResult } from './service.js';
import { PROVISIONING_STEP_NAMES } from './step-names.js';

const uuid = z.uuid({ error: 'must be a clinic id (UUID)' });

export const DbStatusEnum = builder.enumType('DbStatus', {
  description: 'Health of a clinic database, as the last check found it.',
  values: {
    HEALTHY: { description: 'Exists, reachable by its role, every table present, current schema.' },
    DEGRADED: { description: 'Reachable, but tables, grants or migrations are missing.' },
    UNHEALTHY: { description: 'Exists but cannot be reached by its role.' },
    MISSING: { description: 'The database does not exist.' },
    PROVISIONING: { description: 'Still being created; not checked.' },
  } as const,
});

const ClinicStatusEnum = builder.enumType('ClinicStatus', {
  description: 'Lifecycle of a clinic and its database.',
  values: {
    PROVISIONING: { description: 'Its database is being created.' },
    PENDING: { description: 'A transient failure; provisioning continues in the background.' },
    READY: { description: 'Provisioned; its users can sign in.' },
    FAILED: { description: 'Provisioning failed; retryProvisioning may run it again.' },
    DELETING: { description: 'Being deleted.' },
    DELETED: { description: 'Deleted.' },
  } as const,
});
const StepStatusEnum = builder.enumType('ProvisioningStepStatus', {
  description: 'Outcome of one step of a provisioning run.',
  values: {
    STARTED: { description: 'Running.' },
    SUCCEEDED: { description: 'Done.' },
    FAILED: { description: 'Failed; the run stops.' },
    ROLLED_BACK: { description: 'Done, then undone after a later step failed.' },
    SKIPPED: { description: 'Nothing to do (e.g. DNS not configured).' },
  } as const,
});
const RunStatusEnum = builder.enumType('ProvisioningRunStatus', {
  description: 'Outcome of a provisioning run.',
  values: {
    RUNNING: { description: 'In progress.' },
    SUCCEEDED: { description: 'Every step succeeded.' },
    FAILED: { description: 'A step failed and undoing the steps done did not fully succeed.' },
    ROLLED_BACK: { description: 'A step failed and the steps done were undone.' },
  } as const,
});
const RUN_KINDS = ['REGISTER', 'REPAIR', 'UPGRADE', 'DELETE', 'ONBOARDING', 'RESTORE'] as const;
const RunKindEnum = builder.enumType('ProvisioningRunKind', { values: RUN_KINDS });
export const StepNameEnum = builder.enumType('ProvisioningStepName', { values: PROVISIONING_STEP_NAMES });

interface ClinicSummary {
  createdAt: Date;
  admin: User | undefined;
}

/** A clinic's creation date and first admin, batched per request (the clinics table lists them all). */
const clinicSummary = (context: Context, clinicId: string) =>
  batchLoad<ClinicSummary>(context, 'clinic.summary', clinicId, async (ids) => {
    const clinics = await context.scoped((tx) =>
      tx.clinic.findMany({
        where: { id: { in: ids } },
        select: {
          id: true,
          createdAt: true,
          users: { where: { role: 'CLINIC_ADMIN' }, orderBy: { createdAt: 'asc' }, take: 1 },
        },
      }),
    );
    return new Map(
      clinics.map((clinic) => [clinic.id, { createdAt: clinic.createdAt, admin: clinic.users[0] }]),
    );
  });

const DnsRecordRef = builder.objectRef<DnsRecord>('DnsRecord').implement({
  description: 'A record of a clinic subdomain, as the DNS provider holds it.',
  fields: (t) => ({
    name: t.exposeString('name'),
    type: t.exposeString('type', { description: 'A, AAAA, CNAME or TXT.' }),
    value: t.exposeString('value'),
    ttl: t.exposeInt('ttl', { description: 'Seconds.' }),
  }),
});

const CertificateRef = builder.objectRef<IssuedCertificate>('Certificate').implement({
  description: "A clinic subdomain's live certificate (never its key).",
  fields: (t) => ({
    fqdn: t.exposeString('fqdn'),
    provider: t.exposeString('issuer', { description: 'builtin (Onramp’s own CA) or acme.' }),
    issuer: t.string({
      description: 'Distinguished name of the issuing CA, e.g. "CN=Onramp Development CA".',
      resolve: (certificate) => {
        try {
          return new X509Certificate(certificate.certificatePem).issuer.replaceAll('\n', ', ');
        } catch {
          return 'unreadable certificate';
        }
      },
    }),
    serialNumber: t.exposeString('serialNumber'),
    notBefore: t.expose('notBefore', { type: 'DateTime' }),
    notAfter: t.expose('notAfter', { type: 'DateTime' }),
  }),
});

export const ClinicHealthRef = builder.objectRef<ClinicHealth>('ClinicHealth').implement({
  fields: (t) => ({
    clinicId: t.exposeID('clinicId'),
    name: t.exposeString('name'),
    server: t.exposeString('server', {
      description: 'Name of the PostgreSQL server holding the database (its address when first recorded).',
    }),
    serverReachable: t.exposeBoolean('serverReachable', {
      description:
        'False when no configured URL reaches that server now: the clinic is reported, never treated as empty (`errors` says why).',
    }),
    subdomain: t.exposeString('subdomain'),
    dbStatus: t.field({ type: DbStatusEnum, resolve: (health) => health.dbStatus }),
    tablesCount: t.exposeInt('tablesCount'),
    expectedTables: t.exposeInt('expectedTables'),
    missingTables: t.exposeStringList('missingTables'),
    schemaVersion: t.exposeString('schemaVersion', { nullable: true }),
    errors: t.exposeStringList('errors'),
    lastCheck: t.expose('lastCheck', {
      type: 'DateTime',
      description: "When the check ran, by the server's clock.",
    }),
    createdAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'When the clinic was registered; null once it is gone.',
      resolve: async (health, _args, context) => (await clinicSummary(context, health.clinicId))?.createdAt,
    }),
    admin: t.field({
      type: UserRef,
      nullable: true,
      description: "The clinic's first admin (who registered it).",
      resolve: async (health, _args, context) => (await clinicSummary(context, health.clinicId))?.admin,
    }),
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
    databaseServer: t.string({
      authScopes: { operator: true },
      description: 'Name of the server that holds the database (see databaseServers).',
      resolve: (clinic, _args, context) => context.deps.provisioning.serverName(clinic.databaseServerId),
    }),
    schemaVersion: t.exposeString('schemaVersion', { nullable: true, authScopes: { operator: true } }),
    health: t.field({
      type: ClinicHealthRef,
      authScopes: { operator: true },
      description: 'Checks the database now (one connection).',
      resolve: (clinic, _args, context) => context.deps.provisioning.checkClinic(clinic.id),
    }),
    admin: t.field({
      type: UserRef,
      nullable: true,
      authScopes: { operator: true },
      description: "The clinic's first admin (who registered it).",
      resolve: async (clinic, _args, context) => (await clinicSummary(context, clinic.id))?.admin,
    }),
    fqdn: t.string({
      description: '`<subdomain>.<BASE_DOMAIN>`, the name the clinic is reached at.',
      resolve: (clinic, _args, context) => clinicFqdn(clinic.subdomain, context.deps.config.baseDomain),
    }),
    dnsRecords: t.field({
      type: [DnsRecordRef],
      authScopes: { operator: true },
      description: 'Records of the subdomain at the DNS provider (DNS_PROVIDER), asked now.',
      resolve: (clinic, _args, context) =>
        context.deps.dns.records(clinicFqdn(clinic.subdomain, context.deps.config.baseDomain)),
    }),
    certificate: t.field({
      type: CertificateRef,
      nullable: true,
      authScopes: { operator: true },
      description: 'The live certificate of the subdomain (CERT_PROVIDER); null when none is issued.',
      resolve: (clinic, _args, context) =>
        context.deps.certificates.current(clinicFqdn(clinic.subdomain, context.deps.config.baseDomain)),
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
    clinicName: t.exposeString('subjectName', {
      nullable: true,
      description:
        "The clinic's name when the run started (an onboarding's organisation or domain); kept after a rollback removed the clinic.",
    }),
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
  kind?: (typeof RUN_KINDS)[number];
  clinicId: string;
  clinicName?: string | null;
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
    kind: t.field({
      type: RunKindEnum,
      nullable: true,
      description: "The run's kind (null only from an instance older than this field).",
      resolve: (event) => event.kind ?? null,
    }),
    clinicId: t.exposeID('clinicId'),
    clinicName: t.string({
      nullable: true,
      description: "The clinic's name (an onboarding's organisation or domain), from the run's first event.",
      resolve: (event) => event.clinicName ?? null,
    }),
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
  provisioningRun: t.prismaField({
    type: 'ProvisioningRun',
    nullable: true,
    authScopes: { operator: true },
    description: 'One run with its steps and error; null when there is no such run.',
    args: { id: t.arg.id({ required: true, validate: z.uuid({ error: 'must be a run id (UUID)' }) }) },
    resolve: (query, _root, { id }, context) =>
      context.scoped((tx) => tx.provisioningRun.findUnique({ ...query, where: { id: String(id) } })),
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
    dataLost: t.exposeBoolean('dataLost', {
      description:
        'The database of a clinic that held data was gone with no copy in quarantine: repair created an empty one (audited, super-admins alerted).',
    }),
  }),
});

const DeleteClinicSuccessRef = builder.objectRef<{ clinicId: string }>('DeleteClinicSuccess').implement({
  fields: (t) => ({ clinicId: t.exposeID('clinicId') }),
});

const RestoreClinicSuccessRef = builder
  .objectRef<{ health: ClinicHealth }>('RestoreClinicSuccess')
  .implement({
    description: 'The clinic is READY again; its health right after the restore.',
    fields: (t) => ({
      clinicId: t.id({ description: 'The restored clinic.', resolve: (result) => result.health.clinicId }),
      health: t.field({
        type: ClinicHealthRef,
        description: 'Its health checked right after the restore.',
        resolve: (result) => result.health,
      }),
    }),
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
    resolve: (_root, { clinicId }, context) =>
      context.deps.provisioning.repairClinic(String(clinicId), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  deleteClinic: t.field({
    type: DeleteClinicSuccessRef,
    authScopes: { operator: true },
    errors: { types: [NotFoundError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid }) },
    resolve: async (_root, { clinicId }, context) => {
      await context.deps.provisioning.deleteClinic(String(clinicId), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      });
      return { clinicId: String(clinicId) };
    },
  }),
  restoreClinic: t.field({
    type: RestoreClinicSuccessRef,
    description:
      'Super-admins: brings a DELETED clinic back within CLINIC_DELETE_RETENTION (its database ' +
      'from quarantine, READY again); recorded as a RESTORE run. CONFLICT when the clinic is not ' +
      'deleted, another restore is under way, or the retention is over.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid, description: 'A DELETED clinic.' }) },
    resolve: async (_root, { clinicId }, context) => ({
      health: await context.deps.provisioning.restoreClinic(String(clinicId), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
    }),
  }),
  injectFault: t.field({
    type: InjectFaultSuccessRef,
    description: 'Development and test only, super-admins: the next `times` runs of `step` fail.',
    authScopes: { devTools: true },
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
    description:
      'Every step transition of provisioning runs; of one clinic when `clinicId` is given. With ' +
      '`since` (the `at` of the last event seen), what the run and step records hold from then on ' +
      'comes first: a client that resubscribes misses nothing recorded (a step rolled back shows ' +
      'STARTED then ROLLED_BACK). Events are never repeated within a subscription, but may repeat ' +
      'across one: fold them by run, step and attempt.',
    authScopes: { operator: true },
    args: {
      clinicId: t.arg.id({ validate: uuid }),
      since: t.arg({
        type: 'DateTime',
        description:
          'Replay what was recorded from this time on (the `at` of the last event seen) before going live.',
      }),
    },
    subscribe: (_root, { clinicId, since }, context) => {
      const clinic = clinicId ? String(clinicId) : undefined;
      return replaying({
        live: pipe(
          context.deps.events.pubsub.subscribe('provisioning') as AsyncIterable<ProvisioningEventShape>,
          filter((event) => !clinic || event.clinicId === clinic),
        ),
        since: since ?? undefined,
        load: (from) => recordedEvents(context.scoped, { since: from, clinicId: clinic }),
        bus: context.deps.events,
        logger: context.deps.logger,
      });
    },
    resolve: (event) => event,
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
