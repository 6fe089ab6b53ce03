import { z } from 'zod';
import { builder } from '../../builder.js';
import type { Context } from '../../context.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { idSchema } from '../../ids.js';
import { AcceptedDocumentInput } from '../consents/schema.js';
import { requireCurrent } from '../consents/service.js';
import { ProvisioningFailedError } from '../provisioning/index.js';
import { ClinicRef } from '../provisioning/schema.js';
import { EmailTakenError } from '../users/errors.js';
import { UserRef } from '../users/schema.js';
import type { OrphanObject, QuarantinedObject, ZombieAccount, ZombieReport } from './reconciler.js';
import { registerClinicSchema } from './validation.js';

const RegistrationStatusEnum = builder.enumType('RegistrationStatus', {
  description: 'Where a new clinic stands when registerClinic answers.',
  values: {
    READY: { description: 'The clinic database is provisioned and verified.' },
    PENDING: { description: 'Hybrid mode: a transient failure; provisioning continues in the background.' },
  } as const,
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
    acceptedDocuments: t.field({
      type: [AcceptedDocumentInput],
      description:
        'The admin’s acceptance of the terms and the privacy notice at their current versions; VALIDATION on this field otherwise.',
    }),
  }),
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
    resolve: (_root, args, context) => {
      const input = registerClinicSchema.parse(args.input);
      const acceptances = requireCurrent(context.deps.config, input.acceptedDocuments, [
        'input',
        'acceptedDocuments',
      ]);
      return context.deps.registration.register(input, { ip: context.ip, acceptances });
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
        validate: idSchema('a clinic id'),
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
