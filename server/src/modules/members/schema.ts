/** Members of a clinic: atomic invitations by SMS or e-mail, activation with a code. */
import { z } from 'zod';
import { builder, errorType } from '../../builder.js';
import { ConflictError } from '../../errors.js';
import { idSchema } from '../../ids.js';
import { ClinicUnavailableError, EmailNotVerifiedError, TooManyAttemptsError } from '../auth/errors.js';
import { AuthSessionRef } from '../auth/schema.js';
import { AcceptedDocumentInput } from '../consents/schema.js';
import { acceptancesSchema, requireCurrent } from '../consents/service.js';
import { EmailTakenError, InvalidCodeError } from '../users/errors.js';
import { UserRef } from '../users/schema.js';
import { emailSchema, passwordSchema, phoneSchema } from '../users/validation.js';
import { DeliveryFailedError } from './errors.js';

errorType(
  DeliveryFailedError,
  'DeliveryFailedError',
  'The invitation could not be delivered; nothing was kept (`DELIVERY_FAILED`).',
);

const MemberRoleEnum = builder.enumType('MemberRole', {
  description: 'The role an invited member gets in their clinic.',
  values: {
    PRACTITIONER: { description: 'Sees and treats clients.' },
    STAFF: { description: 'Front-desk staff.' },
    CLINIC_ADMIN: { description: 'Manages the clinic and invites members.' },
  } as const,
});
const InviteChannelEnum = builder.enumType('InviteChannel', {
  description: 'How the invitation and its activation code are delivered.',
  values: {
    SMS: { description: 'By SMS to `phone`.' },
    EMAIL: { description: 'By e-mail to `email`.' },
  } as const,
});

const InviteMemberInput = builder.inputType('InviteMemberInput', {
  description: 'Who to invite into a clinic, and how to reach them.',
  fields: (t) => ({
    clinicId: t.id({ required: true, description: 'The clinic (UUID) the caller administers.' }),
    firstName: t.string({ required: true, description: '1 to 100 characters.' }),
    lastName: t.string({ required: true, description: '1 to 100 characters.' }),
    role: t.field({ type: MemberRoleEnum, required: true, description: 'Their role in the clinic.' }),
    channel: t.field({
      type: InviteChannelEnum,
      required: true,
      description: 'How the activation code is sent.',
    }),
    phone: t.string({ description: 'Required for SMS; international format.' }),
    email: t.string({ description: 'Required for EMAIL.' }),
  }),
});

const name = (label: string) =>
  z
    .string()
    .trim()
    .min(1, { error: `${label} is required` })
    .max(100);
const inviteSchema = z
  .object({
    clinicId: idSchema('a clinic id'),
    firstName: name('First name'),
    lastName: name('Last name'),
    role: z.enum(['PRACTITIONER', 'STAFF', 'CLINIC_ADMIN']),
    channel: z.enum(['SMS', 'EMAIL']),
    phone: phoneSchema.nullish(),
    email: emailSchema.nullish(),
  })
  .superRefine((input, ctx) => {
    if (input.channel === 'SMS' && !input.phone)
      ctx.addIssue({ code: 'custom', path: ['phone'], message: 'A phone number is needed to invite by SMS' });
    if (input.channel === 'EMAIL' && !input.email)
      ctx.addIssue({
        code: 'custom',
        path: ['email'],
        message: 'An e-mail address is needed to invite by e-mail',
      });
  });

const InviteMemberSuccess = builder.objectRef<{ userId: string }>('InviteMemberSuccess').implement({
  description: 'The member was created and their activation code delivered.',
  fields: (t) => ({
    member: t.prismaField({
      type: UserRef,
      description: 'The invited member, not yet activated.',
      resolve: (query, result, _args, context) =>
        context.scoped((tx) => tx.user.findUniqueOrThrow({ ...query, where: { id: result.userId } })),
    }),
  }),
});

const ActivateAccountInput = builder.inputType('ActivateAccountInput', {
  description:
    'An invited member sets their password with the code they received; give exactly one of phone and email.',
  fields: (t) => ({
    phone: t.string({ description: 'The phone number the code was sent to (international format).' }),
    email: t.string({ description: 'The e-mail address the code was sent to.' }),
    code: t.string({ required: true, description: 'The activation code.' }),
    password: t.string({
      required: true,
      description: 'The new password (see the password rules in the README).',
    }),
    acceptedDocuments: t.field({
      type: [AcceptedDocumentInput],
      description:
        'The member’s acceptance of the terms and the privacy notice at their current versions; VALIDATION on this field otherwise.',
    }),
  }),
});

const activateSchema = z
  .object({
    phone: phoneSchema.nullish(),
    email: emailSchema.nullish(),
    code: z.string().trim().min(1).max(12),
    password: passwordSchema,
    acceptedDocuments: acceptancesSchema,
  })
  .superRefine((input, ctx) => {
    if (!input.phone === !input.email)
      ctx.addIssue({
        code: 'custom',
        path: ['email'],
        message: 'Give the e-mail or the phone number the code was sent to',
      });
  });

interface DevSmsShape {
  to: string;
  text: string;
  at: Date;
}
const SmsMessageRef = builder.objectRef<DevSmsShape>('SmsMessage').implement({
  description: 'An SMS the built-in development outbox kept instead of sending it.',
  fields: (t) => ({
    to: t.exposeString('to', { description: 'Recipient phone number, international format.' }),
    text: t.exposeString('text', { description: 'The message text.' }),
    at: t.expose('at', { type: 'DateTime', description: 'When it was sent.' }),
  }),
});

builder.mutationFields((t) => ({
  inviteMember: t.field({
    type: InviteMemberSuccess,
    description:
      'Clinic admins of `clinicId`: invites a member. Atomic: the member and their activation code exist only if the message was accepted (DELIVERY_FAILED otherwise); EMAIL_TAKEN, CONFLICT, EMAIL_NOT_VERIFIED.',
    errors: { types: [DeliveryFailedError, EmailTakenError, ConflictError, EmailNotVerifiedError] },
    args: {
      input: t.arg({ type: InviteMemberInput, required: true, description: 'Who to invite and how.' }),
    },
    validate: z.object({ input: inviteSchema }),
    authScopes: (_root, args) => ({ clinicAdmin: String(args.input.clinicId) }),
    resolve: async (_root, args, context) => {
      const input = inviteSchema.parse(args.input);
      const userId = await context.deps.members.invite(
        { ...input, phone: input.phone ?? null, email: input.email ?? null },
        { userId: context.viewer?.userId ?? null, role: context.viewer?.role ?? null },
      );
      return { userId };
    },
  }),
  activateAccount: t.field({
    type: AuthSessionRef,
    description:
      'Public: an invited member activates their account with the code they received and is signed in. INVALID_CODE on a wrong or expired code, TOO_MANY_ATTEMPTS after repeated failures, CLINIC_UNAVAILABLE when the clinic is not active.',
    errors: { types: [InvalidCodeError, TooManyAttemptsError, ClinicUnavailableError] },
    args: {
      input: t.arg({
        type: ActivateAccountInput,
        required: true,
        description: 'The code and the new password.',
      }),
    },
    validate: z.object({ input: activateSchema }),
    resolve: async (_root, args, context) => {
      const input = activateSchema.parse(args.input);
      const acceptances = requireCurrent(context.deps.config, input.acceptedDocuments, [
        'input',
        'acceptedDocuments',
      ]);
      const userId = await context.deps.members.activate(
        { email: input.email ?? null, phone: input.phone ?? null },
        input.code,
        input.password,
        { acceptances, ip: context.ip },
      );
      return context.deps.auth.startSession(
        userId,
        { ip: context.ip, userAgent: context.userAgent },
        'activation',
      );
    },
  }),
}));

builder.queryField('devSmsOutbox', (t) =>
  t.field({
    type: [SmsMessageRef],
    description:
      'Development and test only, super-admins: what the built-in SMS outbox would have sent to `to`, newest first.',
    authScopes: { devTools: true },
    args: {
      to: t.arg.string({
        required: true,
        validate: phoneSchema,
        description: 'Recipient phone number, international format.',
      }),
    },
    resolve: (_root, { to }, context) => context.deps.sms.outbox(to),
  }),
);
