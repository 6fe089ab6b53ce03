import { X509Certificate } from 'node:crypto';
import { filter, pipe } from 'graphql-yoga';
import { z } from 'zod';
import { builder, ErrorInterface } from '../../builder.js';
import type { Context } from '../../context.js';
import { checkCursors, uuidCursor } from '../../cursors.js';
import { ConflictError, invalidArguments, NotFoundError } from '../../errors.js';
import type { User } from '../../generated/central/client.js';
import { idSchema, isUuid } from '../../ids.js';
import { batchLoad } from '../../loader.js';
import type { IssuedCertificate } from '../certificates/issuer.js';
import { clinicFqdn, type DnsRecord } from '../dns/provider.js';
import type { ClinicsHealthSummary } from '../health/clinics.js';
// A cycle (registration's schema uses ClinicRef), safe because Pothos reads refs lazily in `fields`.
import { MOVE_STEP_DESCRIPTIONS } from '../moves/step-names.js';
import { UserRef } from '../users/schema.js';
import { type ProvisioningEvent, subjectOf } from './engine/events.js';
import { ProvisioningFailedError } from './errors.js';
import type { ClinicHealth, DbStatus } from './integrity.js';
import { recordedEvents, replaying } from './replay.js';
import type { RepairResult } from './service.js';
import { PROVISIONING_STEP_NAMES } from './step-names.js';

const uuid = idSchema('a clinic id');

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
const RUN_KINDS = ['REGISTER', 'REPAIR', 'UPGRADE', 'DELETE', 'ONBOARDING', 'RESTORE', 'MOVE'] as const;
const RUN_KIND_DESCRIPTIONS: Record<(typeof RUN_KINDS)[number], string> = {
  REGISTER: 'A clinic registration (registerClinic): creates its records and database.',
  REPAIR: 'A repair of an existing clinic database.',
  UPGRADE: 'Reserved for upgrades of existing clinic databases (upgrades at startup record no run).',
  DELETE: 'An unverified registration undone after UNVERIFIED_CLINIC_TTL (not deleteClinic).',
  ONBOARDING: 'The provisioning of an onboarding (`/api/v1/onboarding/provision`).',
  RESTORE: 'A deleted clinic brought back from quarantine (restoreClinic).',
  MOVE: "A clinic's database moved to another server online (moveClinic).",
};
const SubjectKindEnum = builder.enumType('ProvisioningSubjectKind', {
  description: 'What a provisioning run works on.',
  values: {
    CLINIC: { description: 'A clinic (registration, repair, upgrade, deletion, restore).' },
    ONBOARDING: { description: "An onboarding of a third-party application's tenant." },
  } as const,
});
const RunKindEnum = builder.enumType('ProvisioningRunKind', {
  description: 'What a provisioning run was started for.',
  values: Object.fromEntries(
    RUN_KINDS.map((kind) => [kind, { description: RUN_KIND_DESCRIPTIONS[kind] }]),
  ) as Record<(typeof RUN_KINDS)[number], { description: string }>,
});
const STEP_DESCRIPTIONS: Record<(typeof PROVISIONING_STEP_NAMES)[number], string> = {
  central_records: 'Creates the company and clinic rows in the central database.',
  subdomain: "Reserves the clinic's subdomain.",
  create_database: "Creates the clinic's PostgreSQL database and its own role.",
  migrate_database: 'Applies the clinic schema migrations to the new database.',
  verify_database: 'Checks the new database: reachable by its role, every table present.',
  seed_provider: "Creates the clinic admin's record in the clinic database.",
  dns: 'Publishes the subdomain at the DNS provider (DNS_PROVIDER).',
  ssl: 'Issues the certificate of the subdomain (CERT_PROVIDER).',
  commit: 'Marks the clinic READY.',
  verification_email: "Sends the admin's email verification.",
  ...MOVE_STEP_DESCRIPTIONS,
};
export const StepNameEnum = builder.enumType('ProvisioningStepName', {
  description: 'Steps of a provisioning run, in run order (also the names FAULT_INJECTION takes).',
  values: Object.fromEntries(
    PROVISIONING_STEP_NAMES.map((name) => [name, { description: STEP_DESCRIPTIONS[name] }]),
  ) as Record<(typeof PROVISIONING_STEP_NAMES)[number], { description: string }>,
});

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
    name: t.exposeString('name', { description: 'Fully qualified record name.' }),
    type: t.exposeString('type', { description: 'A, AAAA, CNAME or TXT.' }),
    value: t.exposeString('value', { description: 'Its data: an address, a target name or a text.' }),
    ttl: t.exposeInt('ttl', { description: 'Seconds.' }),
  }),
});

const CertificateRef = builder.objectRef<IssuedCertificate>('Certificate').implement({
  description: "A clinic subdomain's live certificate (never its key).",
  fields: (t) => ({
    fqdn: t.exposeString('fqdn', { description: 'The name the certificate is for.' }),
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
    serialNumber: t.exposeString('serialNumber', { description: 'Serial number, hexadecimal.' }),
    notBefore: t.expose('notBefore', { type: 'DateTime', description: 'Valid from this time.' }),
    notAfter: t.expose('notAfter', { type: 'DateTime', description: 'Expires at this time.' }),
  }),
});

export const ClinicHealthRef = builder.objectRef<ClinicHealth>('ClinicHealth').implement({
  description: "One check of a clinic's database: existence, reachability by its role, tables, schema.",
  fields: (t) => ({
    clinicId: t.exposeID('clinicId', { description: 'The clinic checked.' }),
    name: t.exposeString('name', { description: "The clinic's name." }),
    server: t.exposeString('server', {
      description: 'Name of the PostgreSQL server holding the database (its address when first recorded).',
    }),
    serverReachable: t.exposeBoolean('serverReachable', {
      description:
        'False when no configured URL reaches that server now: the clinic is reported, never treated as empty (`errors` says why).',
    }),
    subdomain: t.exposeString('subdomain', { description: "The clinic's subdomain." }),
    dbStatus: t.field({
      type: DbStatusEnum,
      description: 'What the check found.',
      resolve: (health) => health.dbStatus,
    }),
    tablesCount: t.exposeInt('tablesCount', { description: 'Tables found in the database.' }),
    expectedTables: t.exposeInt('expectedTables', { description: 'Tables the clinic schema defines.' }),
    missingTables: t.exposeStringList('missingTables', { description: 'Expected tables not found.' }),
    schemaVersion: t.exposeString('schemaVersion', {
      nullable: true,
      description:
        'Migrations applied, as `<count>-<digest>` (equal versions: the same migrations); null when not read.',
    }),
    errors: t.exposeStringList('errors', {
      description: 'What the check found wrong, in words (never credentials); empty when healthy.',
    }),
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

/** A forward page of the recorded health: one row more than asked tells whether more follow. */
async function healthPage(
  context: Context,
  args: {
    first?: number | null;
    after?: string | null;
    status?: DbStatus | null;
    server?: string | null;
    search?: string | null;
  },
) {
  const size = args.first ?? 50;
  const rows = await context.deps.provisioning.health.page(
    { status: args.status, server: args.server, search: args.search },
    size + 1,
    args.after ?? undefined,
  );
  const edges = rows.slice(0, size).map((node) => ({ cursor: node.clinicId, node }));
  return {
    edges,
    pageInfo: {
      hasNextPage: rows.length > size,
      hasPreviousPage: args.after != null,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

const ClinicHealthCountRef = builder
  .objectRef<{ status: DbStatus; count: number }>('ClinicHealthCount')
  .implement({
    description: 'How many clinics the recorded health puts in one status.',
    fields: (t) => ({
      status: t.field({ type: DbStatusEnum, description: 'The status.', resolve: (row) => row.status }),
      count: t.exposeInt('count', { description: 'Clinics recorded in it.' }),
    }),
  });

/** clinicsHealth's object: the recorded summary, and the full list only when a check made one. */
type HealthReport = ClinicsHealthSummary & { clinics?: ClinicHealth[] };

const ClinicsHealthReportRef = builder.objectRef<HealthReport>('ClinicsHealthReport').implement({
  description:
    'The health of every clinic database as the sweeps recorded it (docs/decisions/051), oldest clinic first.',
  fields: (t) => ({
    checkedAt: t.expose('checkedAt', {
      type: 'DateTime',
      description: "When the last shallow sweep read a clinic server's catalog.",
    }),
    total: t.exposeInt('total', { description: 'Clinics recorded.' }),
    healthy: t.exposeInt('healthy', { description: 'Clinics recorded HEALTHY.' }),
    unhealthy: t.exposeInt('unhealthy', {
      description: 'Clinics neither HEALTHY nor PROVISIONING (DEGRADED, UNHEALTHY or MISSING).',
    }),
    byStatus: t.field({
      type: [ClinicHealthCountRef],
      description: 'Clinics recorded in each status (every status listed, zeros included).',
      resolve: (report) => report.byStatus,
    }),
    clinics: t.field({
      type: [ClinicHealthRef],
      description:
        "Every clinic's recorded health in one list: one row per clinic, so its cost grows with the fleet; `page` pages and filters the same rows.",
      resolve: (report, _args, context) => report.clinics ?? context.deps.provisioning.health.recorded(),
    }),
    page: t.connection(
      {
        type: ClinicHealthRef,
        description:
          'A page of the recorded health, oldest clinic first, forward only (`first`, `after`). VALIDATION_FAILED on a malformed cursor or `last`/`before`.',
        args: {
          status: t.arg({ type: DbStatusEnum, description: 'Only clinics recorded in this status.' }),
          server: t.arg.string({
            description: 'Only clinics on this server (its name, as `server` shows it).',
          }),
          search: t.arg.string({
            description: 'Only clinics whose name or subdomain contains this, any case.',
          }),
        },
        resolve: (_report, args, context) => {
          if (args.last != null || args.before != null)
            throw invalidArguments([
              { path: ['last'], message: 'This list pages forward only (first, after)' },
            ]);
          if (args.after != null && !isUuid(args.after))
            throw invalidArguments([{ path: ['after'], message: 'Not a cursor of this list' }]);
          if (args.first != null && (args.first < 1 || args.first > 200))
            throw invalidArguments([{ path: ['first'], message: 'must be 1 to 200' }]);
          return healthPage(context, args);
        },
      },
      {
        name: 'ClinicHealthConnection',
        description: 'A page of recorded clinic health.',
      },
      { name: 'ClinicHealthEdge', description: "One clinic's recorded health in a page." },
    ),
  }),
});

export const ClinicRef = builder.prismaObject('Clinic', {
  description: 'A clinic: its central record and, once provisioned, its own PostgreSQL database.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Clinic id (UUID).' }),
    name: t.exposeString('name', { description: 'Name given at registration.' }),
    country: t.exposeString('country', { description: 'Country given at registration.' }),
    subdomain: t.exposeString('subdomain', { description: 'Label of `fqdn`, unique among clinics.' }),
    status: t.expose('status', { type: ClinicStatusEnum, description: 'Where it is in its lifecycle.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was registered.' }),
    // Where and how the database lives: platform operators only.
    databaseName: t.exposeString('databaseName', {
      authScopes: { operator: true },
      description: 'Super-admins: name of its PostgreSQL database.',
    }),
    databaseServer: t.string({
      authScopes: { operator: true },
      description: 'Name of the server that holds the database (see databaseServers).',
      resolve: (clinic, _args, context) => context.deps.provisioning.serverName(clinic.databaseServerId),
    }),
    schemaVersion: t.exposeString('schemaVersion', {
      nullable: true,
      authScopes: { operator: true },
      description:
        'Super-admins: migrations its database was last brought to (`<count>-<digest>`); null before.',
    }),
    restorableUntil: t.field({
      type: 'DateTime',
      nullable: true,
      authScopes: { operator: true },
      description:
        'Super-admins: for a DELETED clinic, until when restoreClinic can bring it back (its quarantined database is purged then); null for any other clinic, or when nothing is left to restore.',
      resolve: async (clinic, _args, context) =>
        clinic.status === 'DELETED'
          ? ((await context.deps.provisioning.ledger.quarantinedDatabase(clinic.id))?.purgeAfter ?? null)
          : null,
    }),
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
  description: 'One attempt of one step of a provisioning run.',
  fields: (t) => ({
    name: t.exposeString('name', { description: 'Step name (a ProvisioningStepName for registrations).' }),
    status: t.expose('status', { type: StepStatusEnum, description: 'Its outcome so far.' }),
    attempt: t.exposeInt('attempt', { description: 'Attempt number of the step, from 1.' }),
    error: t.exposeString('error', { nullable: true, description: 'Why it failed; null otherwise.' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', description: 'When it started.' }),
    finishedAt: t.expose('finishedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When it ended; null while running.',
    }),
    durationMs: t.exposeInt('durationMs', {
      nullable: true,
      description: 'Milliseconds; null while running.',
    }),
  }),
});

builder.prismaObject('ProvisioningRun', {
  authScopes: { operator: true },
  description: 'Super-admins: one provisioning run of a clinic, with its steps.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'Run id (UUID).' }),
    clinicId: t.id({
      description:
        'The clinic it ran for (it may since be gone); the onboarding, for an ONBOARDING run (see `subjectKind`).',
      resolve: (run) => subjectOf(run).id,
    }),
    subjectKind: t.expose('subjectKind', {
      type: SubjectKindEnum,
      description: 'Whether `clinicId` is a clinic or an onboarding.',
    }),
    clinicName: t.exposeString('subjectName', {
      nullable: true,
      description:
        "The clinic's name when the run started (an onboarding's organisation or domain); kept after a rollback removed the clinic.",
    }),
    kind: t.expose('kind', { type: RunKindEnum, description: 'What it was started for.' }),
    status: t.expose('status', { type: RunStatusEnum, description: 'Its outcome so far.' }),
    attempt: t.exposeInt('attempt', {
      description: 'Attempt number for this clinic, from 1 (a retry is 2 or more).',
    }),
    error: t.exposeString('error', { nullable: true, description: 'Why it failed; null otherwise.' }),
    startedAt: t.expose('startedAt', { type: 'DateTime', description: 'When it started.' }),
    finishedAt: t.expose('finishedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When it ended; null while running.',
    }),
    durationMs: t.int({
      nullable: true,
      description: 'Milliseconds from start to end; null while running.',
      resolve: (run) => (run.finishedAt ? run.finishedAt.getTime() - run.startedAt.getTime() : null),
    }),
    steps: t.relation('steps', {
      description: 'Its step attempts, in the order they started.',
      query: { orderBy: [{ startedAt: 'asc' }, { seq: 'asc' }] },
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
  description: 'Counts over every recorded provisioning run; durations of successful registrations.',
  fields: (t) => ({
    successes: t.exposeInt('successes', { description: 'Runs that SUCCEEDED.' }),
    failures: t.exposeInt('failures', { description: 'Runs that FAILED or were ROLLED_BACK.' }),
    retries: t.exposeInt('retries', { description: 'Runs that were a second or later attempt.' }),
    p50Ms: t.exposeInt('p50Ms', {
      nullable: true,
      description: 'Median duration of successful registrations.',
    }),
    p95Ms: t.exposeInt('p95Ms', {
      nullable: true,
      description: '95th percentile duration of successful registrations, in ms; null when there is none.',
    }),
  }),
});

const ProvisioningEventRef = builder.objectRef<ProvisioningEvent>('ProvisioningEvent').implement({
  description: 'A step of a provisioning run changed status.',
  fields: (t) => ({
    runId: t.exposeID('runId', { description: 'The run (see provisioningRun).' }),
    kind: t.field({
      type: RunKindEnum,
      nullable: true,
      description: "The run's kind (null only from an instance older than this field).",
      resolve: (event) => event.kind,
    }),
    clinicId: t.id({
      description: 'The clinic it runs for (the onboarding, for an ONBOARDING run: see `subjectKind`).',
      resolve: (event) => event.subject.id,
    }),
    subjectKind: t.field({
      type: SubjectKindEnum,
      description: 'Whether `clinicId` is a clinic or an onboarding.',
      resolve: (event) => event.subject.kind,
    }),
    clinicName: t.string({
      nullable: true,
      description: "The clinic's name (an onboarding's organisation or domain), from the run's first event.",
      resolve: (event) => event.subject.name,
    }),
    step: t.exposeString('step', { description: 'Step name (a ProvisioningStepName for registrations).' }),
    status: t.field({
      type: StepStatusEnum,
      description: "The step's new status.",
      resolve: (event) => event.status,
    }),
    attempt: t.exposeInt('attempt', { description: 'Attempt number of the step, from 1.' }),
    message: t.exposeString('message', {
      nullable: true,
      description: 'What the step did, why it was skipped or failed (at most 500 characters); may be null.',
    }),
    at: t.field({
      type: 'DateTime',
      description: 'When it happened (pass it as `since` to resume).',
      resolve: (event) => event.at,
    }),
    durationMs: t.exposeInt('durationMs', {
      nullable: true,
      description: 'Milliseconds the step took; null when it just started.',
    }),
    runStatus: t.field({
      type: RunStatusEnum,
      nullable: true,
      description:
        "The run's outcome, on the event that ends it (the run record is finished by then); null on the others and on replayed events. Whatever step a run ends with, this says it is over.",
      resolve: (event) => event.runStatus ?? null,
    }),
  }),
});

builder.queryFields((t) => ({
  clinic: t.prismaField({
    type: 'Clinic',
    nullable: true,
    description: 'Operators see any clinic; clinic admins their own.',
    authScopes: (_root, args) => ({ operator: true, clinicAdmin: String(args.id) }),
    args: { id: t.arg.id({ required: true, validate: uuid, description: 'Clinic id (UUID).' }) },
    resolve: (query, _root, { id }, context) =>
      context.scoped((tx) => tx.clinic.findUnique({ ...query, where: { id } })),
  }),
  clinics: t.prismaConnection({
    type: 'Clinic',
    cursor: 'id',
    authScopes: { operator: true },
    description:
      'Super-admins: clinics, oldest first, paginated by cursor. VALIDATION_FAILED on a malformed cursor.',
    args: {
      status: t.arg({ type: ClinicStatusEnum, description: 'Only clinics in this status.' }),
      health: t.arg({ type: DbStatusEnum, description: 'Only clinics whose recorded health is this.' }),
    },
    resolve: async (query, _root, args, context) => {
      checkCursors(args, uuidCursor);
      let ids: string[] | undefined;
      if (args.health) {
        ids = await context.deps.provisioning.health.idsWithStatus(args.health);
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
    description:
      'Super-admins: the recorded health of every clinic database (the sweeps keep it current; clinics never checked are checked first).',
    resolve: (_root, _args, context) => context.deps.provisioning.health.summary(),
  }),
  provisioningRuns: t.prismaField({
    type: ['ProvisioningRun'],
    authScopes: { operator: true },
    description:
      "Super-admins: newest first, one clinic's runs, or every clinic's without `clinicId` (the console's metrics chart).",
    args: {
      clinicId: t.arg.id({ validate: uuid, description: "Only this clinic's runs (UUID)." }),
      kind: t.arg({ type: RunKindEnum, description: 'Only runs of this kind.' }),
      first: t.arg.int({
        defaultValue: 20,
        validate: z.number().int().min(1).max(200),
        description: 'How many runs, 1 to 200.',
      }),
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
    description: 'Super-admins: one run with its steps and error; null when there is no such run.',
    args: {
      id: t.arg.id({
        required: true,
        validate: idSchema('a run id'),
        description: 'Run id (UUID).',
      }),
    },
    resolve: (query, _root, { id }, context) =>
      context.scoped((tx) => tx.provisioningRun.findUnique({ ...query, where: { id: String(id) } })),
  }),
  provisioningMetrics: t.field({
    type: ProvisioningMetricsRef,
    authScopes: { operator: true },
    description:
      'Super-admins: counts and durations of the registrations (REGISTER runs); repairs, upgrades, moves and deletions have runs of their own (provisioningRuns).',
    resolve: async (_root, _args, context) => {
      const [row] = await context.scoped(
        (tx) => tx.$queryRaw<
          { successes: number; failures: number; retries: number; p50: number | null; p95: number | null }[]
        >`
        SELECT count(*) FILTER (WHERE status = 'SUCCEEDED' AND kind = 'REGISTER')::int AS successes,
               count(*) FILTER (WHERE status IN ('FAILED', 'ROLLED_BACK') AND kind = 'REGISTER')::int AS failures,
               count(*) FILTER (WHERE attempt > 1 AND kind = 'REGISTER')::int AS retries,
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
  description: "A clinic database's health before and after a repair, and what the repair did.",
  fields: (t) => ({
    before: t.field({
      type: ClinicHealthRef,
      description: 'Health found first.',
      resolve: (result) => result.before,
    }),
    after: t.field({
      type: ClinicHealthRef,
      description: 'Health after the repair.',
      resolve: (result) => result.after,
    }),
    actions: t.exposeStringList('actions', {
      description: 'What was done, in order, in words; empty when nothing.',
    }),
    alreadyHealthy: t.exposeBoolean('alreadyHealthy', {
      description: 'True when it was HEALTHY: nothing was done.',
    }),
    dataLost: t.exposeBoolean('dataLost', {
      description:
        'The database of a clinic that held data was gone with no copy in quarantine: repair created an empty one (audited, super-admins alerted).',
    }),
  }),
});

const DeleteClinicSuccessRef = builder.objectRef<{ clinicId: string }>('DeleteClinicSuccess').implement({
  description: 'The clinic is DELETED; its database is kept quarantined for CLINIC_DELETE_RETENTION.',
  fields: (t) => ({ clinicId: t.exposeID('clinicId', { description: 'The deleted clinic.' }) }),
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
    description: 'The fault is armed.',
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
  description: 'PROVISIONING_FAILED: a step failed and the run was rolled back; nothing it created remains.',
  fields: (t) => ({
    step: t.exposeString('step', { description: 'The step that failed (a ProvisioningStepName).' }),
    runId: t.exposeID('runId', { description: 'The run, for provisioningRun.' }),
  }),
});

builder.mutationFields((t) => ({
  repairClinic: t.field({
    type: RepairClinicSuccessRef,
    description:
      'Super-admins: brings a clinic database back to HEALTHY (recreates a missing database from the ' +
      'template, restores its role, applies missing migrations, re-creates dropped tables); does ' +
      'nothing when it is healthy. NOT_FOUND when there is no such clinic; CONFLICT while it is ' +
      'still provisioning or its server is unreachable.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid, description: 'Clinic id (UUID).' }) },
    resolve: (_root, { clinicId }, context) =>
      context.deps.provisioning.repairClinic(String(clinicId), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  deleteClinic: t.field({
    type: DeleteClinicSuccessRef,
    description:
      'Super-admins: the clinic becomes DELETED (its users cannot sign in, its subdomain stops ' +
      'resolving); its database is quarantined, not dropped, for CLINIC_DELETE_RETENTION ' +
      '(restoreClinic until then), as a DELETE run on provisioningProgress. NOT_FOUND when there is no ' +
      'such clinic; CONFLICT when it is already deleted or its database server cannot be reached; ' +
      'PROVISIONING_FAILED when a step of the run failed (the clinic stays DELETING; see the run).',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError, ProvisioningFailedError] },
    args: { clinicId: t.arg.id({ required: true, validate: uuid, description: 'Clinic id (UUID).' }) },
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
      'from quarantine, READY again); a RESTORE run on provisioningProgress. CONFLICT when the clinic ' +
      'is not deleted, another restore is under way, or the retention is over; PROVISIONING_FAILED ' +
      'when a step of the run failed (the clinic is DELETED again; restoring again resumes).',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError, ProvisioningFailedError] },
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
      step: t.arg({ type: StepNameEnum, required: true, description: 'The step to fail.' }),
      times: t.arg.int({
        defaultValue: 1,
        validate: z.number().int().min(1).max(10),
        description: 'How many of its next runs fail, 1 to 10.',
      }),
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
      'Super-admins: every step transition of provisioning runs; of one clinic when `clinicId` is given. With ' +
      '`since` (the `at` of the last event seen), what the run and step records hold from then on ' +
      'comes first: a client that resubscribes misses nothing recorded (a step rolled back shows ' +
      'STARTED then ROLLED_BACK). Events are never repeated within a subscription, but may repeat ' +
      'across one: fold them by run, step and attempt.',
    authScopes: { operator: true },
    args: {
      clinicId: t.arg.id({ validate: uuid, description: "Only this clinic's runs (UUID)." }),
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
          context.deps.events.pubsub.subscribe('provisioning'),
          filter((event) => !clinic || event.subject.id === clinic),
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
    description: "Super-admins: a clinic database's health status changed.",
    authScopes: { operator: true },
    subscribe: (_root, _args, context) => context.deps.events.pubsub.subscribe('clinicHealth'),
    resolve: (health) => ({
      ...(health as unknown as ClinicHealth),
      lastCheck: new Date(String(health.lastCheck)),
    }),
  }),
}));
