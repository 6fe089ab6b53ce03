/**
 * GraphQL side of the onboarding service (CONTRACT.md sections 3 and 5): applications for
 * super-admins; start, provision, status and complete for an application presenting its
 * `X-Master-Key` header. Same services and rules as the REST routes; limits are RATE_LIMITED
 * GraphQL errors with `extensions.retryAfter`.
 */
import { builder, ErrorInterface } from '../../builder.js';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError, rateLimited, unauthenticated } from '../../errors.js';
import type { Application, Onboarding } from '../../generated/central/client.js';
import type { ApplicationPrincipal } from './applications.js';
import { OnboardingProvisioningFailedError, RateLimitExceeded } from './errors.js';
import type { ProvisionResult } from './service.js';
import { renamed, validateComplete, validateStart, validateUuid } from './validation.js';

/** Turns an exhausted limit into RATE_LIMITED; counts the caller's address first. */
async function limited<T>(context: Context, run: () => Promise<T>): Promise<T> {
  try {
    await context.deps.onboarding.limits.take('ip', context.ip ?? 'unknown');
    return await run();
  } catch (error) {
    if (error instanceof RateLimitExceeded) throw rateLimited(error.retryAfterSeconds);
    throw error;
  }
}

const UUID = /^[0-9a-f-]{36}$/i;

function application(context: Context): ApplicationPrincipal {
  // authScopes guarantee it; this keeps the types honest.
  if (!context.application) throw unauthenticated('Send your master key as X-Master-Key');
  return context.application;
}

const OnboardingStatusEnum = builder.enumType('OnboardingStatus', {
  values: {
    PENDING: { value: 'pending', description: 'Started; not provisioned yet.' },
    ACTIVATED: { value: 'activated', description: 'DNS and certificate in place.' },
    COMPLETED: { value: 'completed', description: 'The application reported its tenant ready.' },
  } as const,
});

const InfrastructureStatusEnum = builder.enumType('InfrastructureStatus', {
  values: {
    PENDING: { value: 'pending' },
    PARTIAL: { value: 'partial', description: 'Some steps done; provisioning again resumes.' },
    READY: { value: 'ready' },
    FAILED: { value: 'failed', description: 'The last attempt failed before any step was done.' },
  } as const,
});

const OnboardingMetadataRef = builder.objectRef<Onboarding>('OnboardingMetadata').implement({
  fields: (t) => ({
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
    dnsConfigured: t.exposeBoolean('dnsConfigured'),
    sslConfigured: t.exposeBoolean('sslConfigured'),
    infrastructureStatus: t.field({
      type: InfrastructureStatusEnum,
      resolve: (onboarding) => onboarding.infrastructureStatus as 'pending',
    }),
    apiKeyGenerated: t.boolean({ resolve: (onboarding) => onboarding.apiKeyHash !== null }),
    provisioningAttempts: t.exposeInt('provisioningAttempts'),
  }),
});

const OnboardingRef = builder.objectRef<Onboarding>('Onboarding').implement({
  description: 'A future tenant of an application: its subdomain and technical infrastructure.',
  fields: (t) => ({
    uuid: t.exposeID('id'),
    applicationId: t.exposeID('applicationId'),
    subdomain: t.exposeString('subdomain'),
    fullDomain: t.string({ resolve: (o, _args, context) => context.deps.onboarding.fullDomain(o) }),
    url: t.string({ resolve: (o, _args, context) => context.deps.onboarding.url(o) }),
    email: t.exposeString('email'),
    organizationName: t.exposeString('organizationName', { nullable: true }),
    status: t.field({ type: OnboardingStatusEnum, resolve: (o) => o.status as 'pending' }),
    tenantId: t.exposeString('tenantId', { nullable: true }),
    completedAt: t.expose('completedAt', { type: 'DateTime', nullable: true }),
    metadata: t.field({ type: OnboardingMetadataRef, resolve: (o) => o }),
  }),
});

const ApplicationRef = builder.objectRef<Application>('Application').implement({
  description: 'An application integrating the onboarding service (it holds a master key).',
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
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
      application: t.field({ type: ApplicationRef, resolve: (result) => result.application }),
      masterKey: t.exposeString('masterKey'),
    }),
  });

const RevokedKeyRef = builder.objectRef<{ application: Application }>('ApplicationKeyRevoked').implement({
  fields: (t) => ({
    application: t.field({ type: ApplicationRef, resolve: (result) => result.application }),
  }),
});

const StartOnboardingSuccess = builder
  .objectRef<{ onboarding: Onboarding }>('StartOnboardingSuccess')
  .implement({
    fields: (t) => ({ onboarding: t.field({ type: OnboardingRef, resolve: (result) => result.onboarding }) }),
  });

const ProvisionOnboardingSuccess = builder
  .objectRef<ProvisionResult>('ProvisionOnboardingSuccess')
  .implement({
    fields: (t) => ({
      onboarding: t.field({ type: OnboardingRef, resolve: (result) => result.onboarding }),
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
    fields: (t) => ({ onboarding: t.field({ type: OnboardingRef, resolve: (result) => result.onboarding }) }),
  });

builder.objectType(OnboardingProvisioningFailedError, {
  name: 'OnboardingProvisioningFailedError',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof OnboardingProvisioningFailedError,
  fields: (t) => ({
    step: t.exposeString('step'),
    runId: t.exposeID('runId'),
  }),
});

const StartOnboardingInput = builder.inputType('StartOnboardingInput', {
  fields: (t) => ({
    email: t.string({ required: true }),
    organizationName: t.string({ description: 'Generated when absent.' }),
  }),
});

builder.queryFields((t) => ({
  applications: t.field({
    type: [ApplicationRef],
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
      status: t.arg({ type: OnboardingStatusEnum }),
      first: t.arg.int({ defaultValue: 100, description: 'At most 500.' }),
    },
    resolve: (_root, args, context) => {
      // Like onboarding(uuid): a malformed id is simply not found, rather than a database error.
      const applicationId =
        args.applicationId === null || args.applicationId === undefined ? null : String(args.applicationId);
      if (applicationId !== null && !UUID.test(applicationId)) return [];
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
    args: { uuid: t.arg.id({ required: true }) },
    resolve: (_root, args, context) =>
      limited(context, async () => {
        const uuid = String(args.uuid);
        const app = application(context);
        // Same budget as GET /status; an unknown (or another application's) uuid is just null.
        await context.deps.onboarding.limits.take('status', app.applicationId);
        if (!UUID.test(uuid)) return null;
        return context.deps.db.prisma.onboarding.findFirst({
          where: { id: uuid.toLowerCase(), applicationId: app.applicationId },
        });
      }),
  }),
}));

builder.mutationFields((t) => ({
  registerApplication: t.field({
    type: IssuedKeyRef,
    authScopes: { superAdmin: true },
    errors: {},
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      context.deps.applications.register(args.name, {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  rotateApplicationKey: t.field({
    type: IssuedKeyRef,
    description: 'Issues a new master key; the previous one stops working at once.',
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: { applicationId: t.arg.id({ required: true }) },
    resolve: (_root, args, context) =>
      context.deps.applications.rotate(validateUuid(String(args.applicationId), ['applicationId']), {
        userId: context.viewer?.userId ?? null,
        ip: context.ip,
      }),
  }),
  revokeApplicationKey: t.field({
    type: RevokedKeyRef,
    description: "Revokes the application's master key; rotateApplicationKey issues a new one.",
    authScopes: { superAdmin: true },
    errors: { types: [NotFoundError] },
    args: { applicationId: t.arg.id({ required: true }) },
    resolve: async (_root, args, context) => ({
      application: await context.deps.applications.revoke(
        validateUuid(String(args.applicationId), ['applicationId']),
        { userId: context.viewer?.userId ?? null, ip: context.ip },
      ),
    }),
  }),
  startOnboarding: t.field({
    type: StartOnboardingSuccess,
    authScopes: { application: true },
    errors: {},
    args: { input: t.arg({ type: StartOnboardingInput, required: true }) },
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
    authScopes: { application: true },
    errors: { types: [NotFoundError, ConflictError, OnboardingProvisioningFailedError] },
    args: {
      uuid: t.arg.id({ required: true }),
      generateApiKey: t.arg.boolean({ defaultValue: false }),
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
    authScopes: { application: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: {
      uuid: t.arg.id({ required: true }),
      tenantId: t.arg.string({ required: true }),
      metadata: t.arg({ type: 'JSON' }),
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
