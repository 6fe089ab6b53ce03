/** Members of a clinic: atomic invitations by SMS or e-mail, activation with a code. */
import { z } from 'zod';
import { builder, errorType } from '../../builder.js';
import { ConflictError } from '../../errors.js';
import { ClinicUnavailableError, EmailNotVerifiedError, TooManyAttemptsError } from '../auth/errors.js';
import { AuthSessionRef } from '../auth/schema.js';
import { EmailTakenError, InvalidCodeError } from '../registration/errors.js';
import { UserRef } from '../registration/schema.js';
import { emailSchema, passwordSchema, phoneSchema } from '../registration/validation.js';
import { DeliveryFailedError } from './errors.js';

errorType(
  DeliveryFailedError,
  'DeliveryFailedError',
  'The invitation could not be delivered; nothing was kept (`DELIVERY_FAILED`).',
);

const MemberRoleEnum = builder.enumType('MemberRole', {
  values: ['PRACTITIONER', 'STAFF', 'CLINIC_ADMIN'] as const,
});
const InviteChannelEnum = builder.enumType('InviteChannel', { values: ['SMS', 'EMAIL'] as const });

const InviteMemberInput = builder.inputType('InviteMemberInput', {
  fields: (t) => ({
    clinicId: t.id({ required: true }),
    firstName: t.string({ required: true }),
    lastName: t.string({ required: true }),
    role: t.field({ type: MemberRoleEnum, required: true }),
    channel: t.field({ type: InviteChannelEnum, required: true }),
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
    clinicId: z.uuid({ error: 'must be a clinic id (UUID)' }),
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
  fields: (t) => ({
    member: t.prismaField({
      type: UserRef,
      resolve: (query, result, _args, context) =>
        context.scoped((tx) => tx.user.findUniqueOrThrow({ ...query, where: { id: result.userId } })),
    }),
  }),
});

const ActivateAccountInput = builder.inputType('ActivateAccountInput', {
  fields: (t) => ({
    phone: t.string(),
    email: t.string(),
    code: t.string({ required: true }),
    password: t.string({ required: true }),
  }),
});

const activateSchema = z
  .object({
    phone: phoneSchema.nullish(),
    email: emailSchema.nullish(),
    code: z.string().trim().min(1).max(12),
    password: passwordSchema,
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
  fields: (t) => ({
    to: t.exposeString('to'),
    text: t.exposeString('text'),
    at: t.expose('at', { type: 'DateTime' }),
  }),
});

builder.mutationFields((t) => ({
  inviteMember: t.field({
    type: InviteMemberSuccess,
    description: 'Atomic: the member and their activation code exist only if the message was accepted.',
    errors: { types: [DeliveryFailedError, EmailTakenError, ConflictError, EmailNotVerifiedError] },
    args: { input: t.arg({ type: InviteMemberInput, required: true }) },
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
    errors: { types: [InvalidCodeError, TooManyAttemptsError, ClinicUnavailableError] },
    args: { input: t.arg({ type: ActivateAccountInput, required: true }) },
    validate: z.object({ input: activateSchema }),
    resolve: async (_root, args, context) => {
      const input = activateSchema.parse(args.input);
      const userId = await context.deps.members.activate(
        { email: input.email ?? null, phone: input.phone ?? null },
        input.code,
        input.password,
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
    args: { to: t.arg.string({ required: true, validate: phoneSchema }) },
    resolve: (_root, { to }, context) => context.deps.sms.outbox(to),
  }),
);
