/**
 * GraphQL side of the onboarding service (README, "Onboarding service"; docs/decisions/010): applications for
 * super-admins; start, provision, status and complete for an application presenting its
 * `X-Master-Key` header. Same services and rules as the REST routes; limits are RATE_LIMITED
 * GraphQL errors with `extensions.retryAfter`.
 */
import { builder, ErrorInterface } from '../../builder.js';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError, unauthenticated } from '../../errors.js';
import type { Application, Onboarding } from '../../generated/central/client.js';
import { isUuid } from '../../ids.js';
import type { ApplicationPrincipal } from './applications.js';
import { OnboardingProvisioningFailedError } from './errors.js';
import type { ProvisionResult } from './service.js';
import { renamed, validateComplete, validateStart, validateUuid } from './validation.js';

/** Counts the caller's address first (its RateLimitedError is RATE_LIMITED, like every limit's). */
async function limited<T>(context: Context, run: () => Promise<T>): Promise<T> {
  await context.deps.onboarding.limits.take('ip', context.ip ?? 'unknown');
  return run();
}

function application(context: Context): ApplicationPrincipal {
  // authScopes guarantee it; this keeps the types honest.
  if (!context.application) throw unauthenticated('Send your master key as X-Master-Key');
  return context.application;
}

const OnboardingStatusEnum = builder.enumType('OnboardingStatus', {
  description: 'Where an onboarding stands.',
  values: {
    PENDING: { value: 'pending', description: 'Started; not provisioned yet.' },
    ACTIVATED: { value: 'activated', description: 'DNS and certificate in place.' },
    COMPLETED: { value: 'completed', description: 'The application reported its tenant ready.' },
  } as const,
});

const InfrastructureStatusEnum = builder.enumType('InfrastructureStatus', {
  description: 'State of an onboarding’s DNS record and certificate.',
  values: {
    PENDING: { value: 'pending', description: 'Not provisioned yet.' },
    PARTIAL: { value: 'partial', description: 'Some steps done; provisioning again resumes.' },
    READY: { value: 'ready', description: 'DNS record and certificate in place.' },
    FAILED: { value: 'failed', description: 'The last attempt failed before any step was done.' },
  } as const,
});

const OnboardingMetadataRef = builder.objectRef<Onboarding>('OnboardingMetadata').implement({
  description: 'Technical state of an onboarding.',
  fields: (t) => ({
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was started.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When it last changed.' }),
    dnsConfigured: t.exposeBoolean('dnsConfigured', { description: 'Whether its DNS record exists.' }),
    sslConfigured: t.exposeBoolean('sslConfigured', { description: 'Whether its certificate is issued.' }),
    infrastructureStatus: t.field({
      type: InfrastructureStatusEnum,
      description: 'DNS and certificate state together.',
      resolve: (onboarding) => onboarding.infrastructureStatus as 'pending',
    }),
    apiKeyGenerated: t.boolean({
      description: 'Whether API credentials were issued for the tenant.',
      resolve: (onboarding) => onboarding.apiKeyHash !== null,
    }),
    provisioningAttempts: t.exposeInt('provisioningAttempts', {
      description: 'How many times provisioning ran.',
    }),
  }),
});

const OnboardingRef = builder.objectRef<Onboarding>('Onboarding').implement({
  description: 'A future tenant of an application: its subdomain and technical infrastructure.',
  fields: (t) => ({
    uuid: t.exposeID('id', { description: 'The onboarding (UUID).' }),
    applicationId: t.exposeID('applicationId', { description: 'The application it belongs to.' }),
    subdomain: t.exposeString('subdomain', { description: 'Its subdomain label.' }),
    fullDomain: t.string({
      description: 'The subdomain under the base domain.',
      resolve: (o, _args, context) => context.deps.onboarding.fullDomain(o),
    }),
    url: t.string({
      description: 'The tenant’s HTTPS address.',
      resolve: (o, _args, context) => context.deps.onboarding.url(o),
    }),
    email: t.exposeString('email', { description: 'The future tenant’s e-mail address.' }),
    organizationName: t.exposeString('organizationName', {
      nullable: true,
      description: 'Its organisation name.',
    }),
    status: t.field({
      type: OnboardingStatusEnum,
      description: 'Where it stands.',
      resolve: (o) => o.status as 'pending',
    }),
    tenantId: t.exposeString('tenantId', {
      nullable: true,
      description: 'The application’s own tenant id, set by completeOnboarding.',
    }),
    completedAt: t.expose('completedAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When completeOnboarding ran.',
    }),
    metadata: t.field({ type: OnboardingMetadataRef, description: 'Technical state.', resolve: (o) => o }),
  }),
});

const ApplicationRef = builder.objectRef<Application>('Application').implement({
  description: 'An application integrating the onboarding service (it holds a master key).',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The application (UUID).' }),
    name: t.exposeString('name', { description: 'Its name.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was registered.' }),
    hasActiveKey: t.boolean({
      description: 'False after revokeApplicationKey, until rotateApplicationKey issues a new one.',
      resolve: async (app, _args, context) =>
        (await context.deps.db.prisma.applicationKey.count({
          where: { applicationId: app.id, revokedAt: null },
        })) > 0,
    }),
    keyPrefix: t.string({
      nullable: true,
      description:
        'The public start `mk_<key id>` of the active master key, to tell keys apart; null without one.',
      resolve: async (app, _args, context) => {
        const key = await context.deps.db.prisma.applicationKey.findFirst({
          where: { applicationId: app.id, revokedAt: null },
          select: { keyId: true },
        });
        return key ? `mk_${key.keyId}` : null;
      },
    }),
    keyLastUsedAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Last use of the active master key (to the minute).',
      resolve: async (app, _args, context) =>
        (
          await context.deps.db.prisma.applicationKey.findFirst({
            where: { applicationId: app.id, revokedAt: null },
            select: { lastUsedAt: true },
          })
        )?.lastUsedAt ?? null,
    }),
    onboardingsCount: t.int({
      description: 'How many onboardings it started.',
      resolve: (app, _args, context) =>
        context.deps.db.prisma.onboarding.count({ where: { applicationId: app.id } }),
    }),
  }),
});

const IssuedKeyRef = builder
  .objectRef<{ application: Application; masterKey: string }>('ApplicationKeyIssued')
  .implement({
    description: 'The master key is shown here once; only its hash is kept.',
    fields: (t) => ({
      application: t.field({
        type: ApplicationRef,
        description: 'The application.',
        resolve: (result) => result.application,
      }),
      masterKey: t.exposeString('masterKey', { description: 'Send as X-Master-Key; shown this once.' }),
    }),
  });

const RevokedKeyRef = builder.objectRef<{ application: Application }>('ApplicationKeyRevoked').implement({
  description: 'The master key no longer works.',
  fields: (t) => ({
    application: t.field({
      type: ApplicationRef,
      description: 'The application, without an active key.',
      resolve: (result) => result.application,
    }),
  }),
});

const StartOnboardingSuccess = builder
  .objectRef<{ onboarding: Onboarding }>('StartOnboardingSuccess')
  .implement({
    description: 'The onboarding exists, PENDING.',
    fields: (t) => ({
      onboarding: t.field({
        type: OnboardingRef,
        description: 'The new onboarding.',
        resolve: (result) => result.onboarding,
      }),
    }),
  });

const ProvisionOnboardingSuccess = builder
  .objectRef<ProvisionResult>('ProvisionOnboardingSuccess')
  .implement({
    description: 'DNS record and certificate are in place.',
    fields: (t) => ({
      onboarding: t.field({
        type: OnboardingRef,
        description: 'The onboarding, ACTIVATED.',
        resolve: (result) => result.onboarding,
      }),
      apiKey: t.exposeString('apiKey', { nullable: true, description: 'Shown once; null on a repeat.' }),
      apiSecret: t.exposeString('apiSecret', {
        nullable: true,
        description: 'Shown once; null on a repeat.',
      }),
      isIdempotent: t.exposeBoolean('isIdempotent', {
        description: 'The onboarding was already provisioned; nothing was done.',
      }),
    }),
  });

const CompleteOnboardingSuccess = builder
  .objectRef<{ onboarding: Onboarding }>('CompleteOnboardingSuccess')
  .implement({
    description: 'The onboarding is COMPLETED.',
    fields: (t) => ({
      onboarding: t.field({
        type: OnboardingRef,
        description: 'The onboarding.',
        resolve: (result) => result.onboarding,
      }),
    }),
  });

builder.objectType(OnboardingProvisioningFailedError, {
  name: 'OnboardingProvisioningFailedError',
  description:
    'Provisioning an onboarding failed at a step; provisioning again resumes (`PROVISIONING_FAILED`).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof OnboardingProvisioningFailedError,
  fields: (t) => ({
    step: t.exposeString('step', { description: 'The step that failed.' }),
    runId: t.exposeID('runId', { description: 'The provisioning run, for provisioningRun(id).' }),
  }),
});

const StartOnboardingInput = builder.inputType('StartOnboardingInput', {
  description: 'A future tenant.',
  fields: (t) => ({
    email: t.string({ required: true, description: 'Its e-mail address.' }),
    organizationName: t.string({ description: 'Generated when absent.' }),
  }),
});

builder.queryFields((t) => ({
  applications: t.field({
    type: [ApplicationRef],
    description: 'Super-admins: every registered application.',
    authScopes: { superAdmin: true },
    resolve: (_root, _args, context) => context.deps.applications.list(),
  }),
  applicationOnboardings: t.field({
    type: [OnboardingRef],
    description:
      "Super-admins (the console): one application's onboardings, or every application's, newest first.",
    authScopes: { superAdmin: true },
    args: {
      applicationId: t.arg.id({ description: 'A malformed id matches no application: an empty list.' }),
      status: t.arg({ type: OnboardingStatusEnum, description: 'Only onboardings in this status.' }),
      first: t.arg.int({ defaultValue: 100, description: 'At most 500.' }),
    },
    resolve: (_root, args, context) => {
      // Like onboarding(uuid): a malformed id is simply not found, rather than a database error.
      const applicationId =
        args.applicationId === null || args.applicationId === undefined ? null : String(args.applicationId);
      if (applicationId !== null && !isUuid(applicationId)) return [];
      return context.deps.db.prisma.onboarding.findMany({
        where: {
          ...(applicationId ? { applicationId: applicationId.toLowerCase() } : {}),
          ...(args.status ? { status: args.status } : {}),
        },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: Math.min(Math.max(args.first ?? 100, 1), 500),
      });
    },
  }),
  onboarding: t.field({
    type: OnboardingRef,
    nullable: true,
    description: "By master key (X-Master-Key): one of the calling application's onboardings, else null.",
    authScopes: { application: true },
    args: { uuid: t.arg.id({ required: true, description: 'The onboarding (UUID).' }) },
    resolve: (_root, args, context) =>
      limited(context, async () => {
        const uuid = String(args.uuid);
        const app = application(context);
        // Same budget as GET /status; an unknown (or another application's) uuid is just null.
        await context.deps.onboarding.limits.take('status', app.applicationId);
        if (!isUuid(uuid)) return null;
        return context.deps.db.prisma.onboarding.findFirst({
          where: { id: uuid.toLowerCase(), applicationId: app.applicationId },
        });
      }),
  }),
}));

builder.mutationFields((t) => ({
  registerApplication: t.field({
    type: IssuedKeyRef,
    description: 'Super-admins: registers an application and issues its master key.',
    authScopes: { superAdmin: true },
    errors: {},
    args: { name: t.arg.string({ required: true, description: 'The application’s name.' }) },
    resolve: (_root, args, context) =>
      context.deps.applications.register(args.name, {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  rotateApplicationKey: t.field({
    type: IssuedKeyRef,
    description: 'Super-admins: issues a new master key; the previous one stops working at once.',
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: { applicationId: t.arg.id({ required: true, description: 'The application (UUID).' }) },
    resolve: (_root, args, context) =>
      context.deps.applications.rotate(validateUuid(String(args.applicationId), ['applicationId']), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  revokeApplicationKey: t.field({
    type: RevokedKeyRef,
    description:
      "Super-admins: revokes the application's master key and the API credentials of all its onboardings, deletes its webhook endpoints, and releases the DNS records and certificates of its pending onboardings; rotateApplicationKey issues a new master key, which brings back neither (the application issues new credentials per onboarding and registers its endpoints again).",
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: { applicationId: t.arg.id({ required: true, description: 'The application (UUID).' }) },
    resolve: async (_root, args, context) => ({
      application: await context.deps.applications.revoke(
        validateUuid(String(args.applicationId), ['applicationId']),
        { userId: context.viewer?.userId ?? null, ip: context.ip },
      ),
    }),
  }),
  startOnboarding: t.field({
    type: StartOnboardingSuccess,
    description: 'By master key (X-Master-Key): starts an onboarding for a future tenant. Rate limited.',
    authScopes: { application: true },
    errors: {},
    args: { input: t.arg({ type: StartOnboardingInput, required: true, description: 'The future tenant.' }) },
    resolve: (_root, args, context) =>
      limited(context, async () => {
        const input = validateStart(
          { email: args.input.email, organization_name: args.input.organizationName },
          renamed({ organization_name: 'organizationName' }, ['input']),
        );
        const { onboarding } = await context.deps.onboarding.start(application(context), input, {
          ip: context.ip,
        });
        return { onboarding };
      }),
  }),
  provisionOnboarding: t.field({
    type: ProvisionOnboardingSuccess,
    description:
      'By master key: creates the onboarding’s DNS record and certificate; idempotent. NOT_FOUND, CONFLICT, PROVISIONING_FAILED.',
    authScopes: { application: true },
    errors: { types: [NotFoundError, ConflictError, OnboardingProvisioningFailedError] },
    args: {
      uuid: t.arg.id({ required: true, description: 'The onboarding (UUID).' }),
      generateApiKey: t.arg.boolean({
        defaultValue: false,
        description: 'Also issue API credentials for the tenant.',
      }),
    },
    resolve: (_root, args, context) =>
      limited(context, () =>
        context.deps.onboarding.provision(
          application(context),
          validateUuid(String(args.uuid), ['uuid']),
          args.generateApiKey ?? false,
          { ip: context.ip },
        ),
      ),
  }),
  completeOnboarding: t.field({
    type: CompleteOnboardingSuccess,
    description: 'By master key: reports the tenant ready on the application’s side. NOT_FOUND, CONFLICT.',
    authScopes: { application: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: {
      uuid: t.arg.id({ required: true, description: 'The onboarding (UUID).' }),
      tenantId: t.arg.string({ required: true, description: 'The application’s own id for the tenant.' }),
      metadata: t.arg({ type: 'JSON', description: 'Free-form details the application keeps with it.' }),
    },
    resolve: (_root, args, context) =>
      limited(context, async () => {
        const uuid = validateUuid(String(args.uuid), ['uuid']);
        const input = validateComplete(
          { tenant_id: args.tenantId, metadata: args.metadata },
          renamed({ tenant_id: 'tenantId' }),
        );
        return {
          onboarding: await context.deps.onboarding.complete(application(context), uuid, input, {
            ip: context.ip,
          }),
        };
      }),
  }),
}));
