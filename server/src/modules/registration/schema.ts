import { z } from 'zod';
import { builder, ErrorInterface, errorType, isErrorData } from '../../builder.js';
import type { Context } from '../../context.js';
import type { RequestScope } from '../../db/request-scope.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { ProvisioningFailedError } from '../provisioning/index.js';
import { ClinicRef } from '../provisioning/schema.js';
import { EmailTakenError, InvalidCodeError } from './errors.js';
import type { OrphanObject, QuarantinedObject, ZombieAccount, ZombieReport } from './reconciler.js';
import { emailSchema, registerClinicSchema } from './validation.js';

const RegistrationStatusEnum = builder.enumType('RegistrationStatus', {
  description: 'Where a new clinic stands when registerClinic answers.',
  values: {
    READY: { description: 'The clinic database is provisioned and verified.' },
    PENDING: { description: 'Hybrid mode: a transient failure; provisioning continues in the background.' },
  } as const,
});

const UserRoleEnum = builder.enumType('UserRole', {
  description: 'What a user may do.',
  values: {
    SUPER_ADMIN: { description: 'Operates Onramp: every clinic, provisioning and repairs.' },
    CLINIC_ADMIN: { description: 'Manages one clinic: its members and clients.' },
    PRACTITIONER: { description: 'A practitioner of one clinic.' },
    STAFF: { description: 'Staff of one clinic.' },
    CLIENT: { description: 'A client of one clinic, signed in by e-mail code.' },
  } as const,
});

export const UserRef = builder.prismaObject('User', {
  description: 'An account: an operator, a clinic member or a client.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The user (UUID).' }),
    email: t.exposeString('email', { nullable: true, description: 'Absent for members invited by SMS.' }),
    phone: t.exposeString('phone', {
      nullable: true,
      description: 'International format; set for members invited by SMS.',
    }),
    firstName: t.exposeString('firstName', { description: 'First name.' }),
    lastName: t.exposeString('lastName', { description: 'Last name.' }),
    role: t.expose('role', { type: UserRoleEnum, description: 'What the user may do.' }),
    emailVerified: t.boolean({
      description: 'Whether the e-mail address was verified.',
      resolve: (user) => user.emailVerifiedAt !== null,
    }),
    clinic: t.relation('clinic', { nullable: true, description: 'Their clinic; null for super-admins.' }),
  }),
});

errorType(
  EmailTakenError,
  'EmailTakenError',
  'The e-mail address already belongs to an account (`EMAIL_TAKEN`).',
);
const InvalidCodeReasonEnum = builder.enumType('InvalidCodeReason', {
  description: 'Why a verification link did not work.',
  values: {
    EXPIRED: { description: 'The link is older than 24 hours.' },
    USED: { description: 'The link was used already, or a newer link replaced it.' },
    UNKNOWN: { description: 'No such link (mistyped or truncated).' },
  } as const,
});

builder.objectType(InvalidCodeError, {
  name: 'InvalidCodeError',
  description: 'The code, token or link is wrong, expired or used (`INVALID_CODE`).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof InvalidCodeError || isErrorData(value, 'InvalidCodeError'),
  fields: (t) => ({
    reason: t.field({
      type: InvalidCodeReasonEnum,
      nullable: true,
      description:
        'Set by verifyEmail only (its links are 256-bit secrets). Sign-in, activation and 2FA codes never say why, so that guessing learns nothing.',
      resolve: (error) => error.reason ?? null,
    }),
  }),
});

interface RegisterClinicResult {
  clinicId: string;
  userId: string;
  status: 'READY' | 'PENDING';
}

/**
 * The caller of registerClinic is anonymous: what they just created is read as its new admin
 * (row-level security, decision 011), which sees that clinic and that user only.
 */
const asNewAdmin = (context: Context, result: RegisterClinicResult) =>
  context.scoped.as({ userId: result.userId, role: 'CLINIC_ADMIN', clinicId: result.clinicId });

const RegisterClinicSuccess = builder.objectRef<RegisterClinicResult>('RegisterClinicSuccess').implement({
  description: 'The clinic and its admin exist; a verification e-mail was sent to the admin.',
  fields: (t) => ({
    clinic: t.prismaField({
      type: ClinicRef,
      description: 'The new clinic.',
      resolve: (query, result, _args, context) =>
        asNewAdmin(
          context,
          result,
        )((tx) => tx.clinic.findUniqueOrThrow({ ...query, where: { id: result.clinicId } })),
    }),
    user: t.prismaField({
      type: UserRef,
      description: 'Its clinic admin, e-mail not yet verified.',
      resolve: (query, result, _args, context) =>
        asNewAdmin(
          context,
          result,
        )((tx) => tx.user.findUniqueOrThrow({ ...query, where: { id: result.userId } })),
    }),
    status: t.field({
      type: RegistrationStatusEnum,
      description: 'READY, or PENDING while provisioning continues.',
      resolve: (result) => result.status,
    }),
  }),
});

const RegisterClinicInput = builder.inputType('RegisterClinicInput', {
  description: 'A new clinic and its first admin.',
  fields: (t) => ({
    clinicName: t.string({ required: true, description: 'The clinic’s name, as its members see it.' }),
    country: t.string({ required: true, description: 'ISO 3166-1 alpha-2, e.g. FR.' }),
    adminEmail: t.string({
      required: true,
      description: 'The admin’s e-mail address; EMAIL_TAKEN if it has an account.',
    }),
    adminPassword: t.string({
      required: true,
      description: 'At least 12 characters; not the e-mail; not a common password.',
    }),
    adminFirstName: t.string({ required: true, description: 'The admin’s first name.' }),
    adminLastName: t.string({ required: true, description: 'The admin’s last name.' }),
    adminPhone: t.string({ description: 'International format, e.g. +33612345678.' }),
  }),
});

const VerifyEmailSuccess = builder
  .objectRef<RequestScope & { userId: string }>('VerifyEmailSuccess')
  .implement({
    description: 'The e-mail address is verified.',
    fields: (t) => ({
      user: t.prismaField({
        type: UserRef,
        description: 'The user whose address it is.',
        // Read as the user who just proved the link is theirs (the caller is not signed in).
        resolve: (query, verified, _args, context) =>
          context.scoped.as(verified)((tx) =>
            tx.user.findUniqueOrThrow({ ...query, where: { id: verified.userId } }),
          ),
      }),
    }),
  });

const ResendVerificationEmailSuccess = builder
  .objectRef<{ accepted: true }>('ResendVerificationEmailSuccess')
  .implement({
    description: 'The same answer whether or not the e-mail belongs to an account.',
    fields: (t) => ({ accepted: t.exposeBoolean('accepted', { description: 'Always true.' }) }),
  });

const RetryProvisioningSuccess = builder
  .objectRef<{ clinicId: string }>('RetryProvisioningSuccess')
  .implement({
    description: 'Provisioning of the clinic ran again.',
    fields: (t) => ({
      clinic: t.prismaField({
        type: ClinicRef,
        description: 'The clinic, with its status after the retry.',
        resolve: (query, result, _args, context) =>
          context.scoped((tx) => tx.clinic.findUniqueOrThrow({ ...query, where: { id: result.clinicId } })),
      }),
    }),
  });

builder.mutationFields((t) => ({
  registerClinic: t.field({
    type: RegisterClinicSuccess,
    description:
      'Public: creates a company, its clinic with its own database, and the clinic admin: all or nothing. EMAIL_TAKEN, PROVISIONING_FAILED, VALIDATION.',
    errors: { types: [EmailTakenError, ProvisioningFailedError] },
    args: {
      input: t.arg({ type: RegisterClinicInput, required: true, description: 'The clinic and its admin.' }),
    },
    validate: z.object({ input: registerClinicSchema }),
    resolve: (_root, args, context) =>
      context.deps.registration.register(registerClinicSchema.parse(args.input), { ip: context.ip }),
  }),
  verifyEmail: t.field({
    type: VerifyEmailSuccess,
    description:
      'Spends the token of a verification link (single use, 24 h). Errors say why a link does not work (InvalidCodeError.reason).',
    errors: { types: [InvalidCodeError] },
    args: {
      token: t.arg.string({
        required: true,
        description: 'The token of the link (base64url, at most 200 characters).',
        // Links carry base64url tokens; anything else (a NUL, a space, a cut-off mail line) is not one.
        validate: z
          .string()
          .min(1, { error: 'The link has no token' })
          .max(200, { error: 'This is not a verification link token' })
          .regex(/^[A-Za-z0-9_-]+$/, { error: 'This is not a verification link token' }),
      }),
    },
    resolve: (_root, { token }, context) => context.deps.registration.verifyEmail(token),
  }),
  resendVerificationEmail: t.field({
    type: ResendVerificationEmailSuccess,
    description:
      'Public: sends a new verification link if the address has an unverified account; the same answer either way.',
    errors: {},
    args: {
      email: t.arg.string({ required: true, validate: emailSchema, description: 'The address to verify.' }),
    },
    resolve: (_root, { email }, context) => {
      // Same answer at the same moment, known e-mail or not: the work starts after it.
      context.deps.registration.resendVerificationEmail(email);
      return { accepted: true as const };
    },
  }),
  retryProvisioning: t.field({
    type: RetryProvisioningSuccess,
    description:
      'Super-admins: provisions a FAILED or PENDING clinic again. NOT_FOUND, CONFLICT for a clinic in another status.',
    authScopes: { operator: true },
    errors: { types: [NotFoundError, ConflictError] },
    args: {
      clinicId: t.arg.id({
        required: true,
        validate: z.uuid({ error: 'must be a clinic id (UUID)' }),
        description: 'The clinic (UUID).',
      }),
    },
    resolve: async (_root, { clinicId }, context) => {
      const id = String(clinicId);
      const clinic = await context.scoped((tx) =>
        tx.clinic.findUnique({ where: { id }, select: { status: true } }),
      );
      if (!clinic) throw new NotFoundError('clinic');
      if (clinic.status !== 'FAILED' && clinic.status !== 'PENDING') {
        throw new ConflictError(
          `Only FAILED or PENDING clinics can be retried; this one is ${clinic.status}`,
        );
      }
      await context.deps.registration.retry(id, { userId: context.viewer?.userId ?? null, ip: context.ip });
      return { clinicId: id };
    },
  }),
}));

const ZombieAccountRef = builder.objectRef<ZombieAccount>('ZombieAccount').implement({
  description: 'A clinic whose users could sign in to a broken database, or whose provisioning is stuck.',
  fields: (t) => ({
    clinicId: t.exposeID('clinicId', { description: 'The clinic.' }),
    name: t.exposeString('name', { description: 'Its name.' }),
    status: t.exposeString('status', { description: 'Its ClinicStatus.' }),
    dbStatus: t.exposeString('dbStatus', { description: 'Its DbStatus.' }),
    reason: t.exposeString('reason', { description: 'What is wrong, in words.' }),
  }),
});

const OrphanObjectRef = builder.objectRef<OrphanObject>('OrphanObject').implement({
  description: 'A clinic database or role the ledger lists for a run that ended without committing.',
  fields: (t) => ({
    server: t.exposeString('server', { description: 'Name of the clinic server holding it.' }),
    name: t.exposeString('name', { description: 'The database or role name.' }),
    kind: t.exposeString('kind', { description: '`DATABASE` or `ROLE`.' }),
  }),
});

const QuarantinedObjectRef = builder.objectRef<QuarantinedObject>('QuarantinedObject').implement({
  description:
    'A clinic database or role set aside instead of dropped: renamed, closed to connections, kept until the purge.',
  fields: (t) => ({
    server: t.exposeString('server', { description: 'Name of the clinic server holding it.' }),
    name: t.exposeString('name', { description: 'Its name before quarantine (the one to restore).' }),
    kind: t.exposeString('kind', { description: '`DATABASE` or `ROLE`.' }),
    clinicId: t.exposeID('clinicId', { description: 'The clinic (or onboarding) it was created for.' }),
    trashName: t.exposeString('trashName', {
      nullable: true,
      description: 'Its name in quarantine (`onramp_trash_…`); null for a role, which keeps its name.',
    }),
    reason: t.exposeString('reason', { nullable: true, description: 'Why it was quarantined.' }),
    purgeAfter: t.expose('purgeAfter', {
      type: 'DateTime',
      nullable: true,
      description: 'When the purge may drop it (the retention ends).',
    }),
  }),
});

const ZombieReportRef = builder.objectRef<ZombieReport>('ZombieReport').implement({
  description: 'What the reconciler finds out of step between clinics and their databases.',
  fields: (t) => ({
    checkedAt: t.expose('checkedAt', { type: 'DateTime', description: 'When the check ran.' }),
    accounts: t.field({
      type: [ZombieAccountRef],
      description: 'Clinics whose users could sign in to a broken database, or stuck provisioning.',
      resolve: (report) => report.accounts,
    }),
    orphans: t.field({
      type: [OrphanObjectRef],
      description: 'Databases and roles left by runs that never committed.',
      resolve: (report) => report.orphans,
    }),
    quarantined: t.field({
      type: [QuarantinedObjectRef],
      description: 'Kept in quarantine (renamed, closed) until the purge after their retention.',
      resolve: (report) => report.quarantined,
    }),
    empty: t.boolean({
      description:
        'True when there are no zombie accounts and no orphans (quarantined objects do not count).',
      resolve: (report) => report.accounts.length === 0 && report.orphans.length === 0,
    }),
  }),
});

builder.queryField('zombieReport', (t) =>
  t.field({
    type: ZombieReportRef,
    authScopes: { operator: true },
    description:
      'Super-admins: accounts without a healthy database and databases without an account. Should be empty.',
    resolve: (_root, _args, context) => context.deps.reconciler.zombieReport(),
  }),
);
