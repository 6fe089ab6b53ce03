/**
 * GraphQL of what every account shares: the `User` type and its role, the errors of account
 * input (EMAIL_TAKEN, INVALID_CODE), and e-mail verification (verifyEmail,
 * resendVerificationEmail).
 */
import { z } from 'zod';
import { builder, ErrorInterface, errorType, isErrorData } from '../../builder.js';
import { type RequestScope, type RunScoped, uuidSql } from '../../db/request-scope.js';
import type { User } from '../../generated/central/client.js';
import { EmailTakenError, InvalidCodeError } from './errors.js';
import { emailSchema } from './validation.js';

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

/**
 * The user `id` as `UserRef` shows it, read in one round trip (`RunScoped.read`, decision 066):
 * the columns its fields expose, no secret among them (password hash, TOTP secret). Relations
 * (`clinic`) are loaded by the Prisma plugin's fallback from the id, through `scoped.client`.
 */
export async function readUser(scoped: RunScoped, id: string): Promise<User | null> {
  const [user] = await scoped.read<
    Pick<User, 'id' | 'email' | 'phone' | 'firstName' | 'lastName' | 'role' | 'clinicId' | 'emailVerifiedAt'>
  >(
    uuidSql`SELECT id, email, phone, first_name AS "firstName", last_name AS "lastName", role,
      clinic_id AS "clinicId", email_verified_at AS "emailVerifiedAt" FROM users WHERE id = ${id}`,
  );
  // UserRef's fields read only these columns; its type is the whole model's.
  return (user as User | undefined) ?? null;
}

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

builder.mutationFields((t) => ({
  verifyEmail: t.field({
    type: VerifyEmailSuccess,
    description:
      'Public: spends the token of a verification link (single use, 24 h). Errors say why a link does not work (InvalidCodeError.reason).',
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
    resolve: (_root, { token }, context) => context.deps.emailVerification.verify(token),
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
      context.deps.emailVerification.resend(email);
      return { accepted: true as const };
    },
  }),
}));
