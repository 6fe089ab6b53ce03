import { z } from 'zod';
import { builder, errorType } from '../../builder.js';
import { InvalidCodeError } from '../registration/errors.js';
import { UserRef } from '../registration/schema.js';
import {
  ClinicUnavailableError,
  EmailNotVerifiedError,
  InvalidCredentialsError,
  InvalidRefreshTokenError,
  TooManyAttemptsError,
} from './errors.js';
import type { IssuedSession } from './service.js';

errorType(InvalidCredentialsError, 'InvalidCredentialsError');
errorType(EmailNotVerifiedError, 'EmailNotVerifiedError');
errorType(ClinicUnavailableError, 'ClinicUnavailableError');
errorType(InvalidRefreshTokenError, 'InvalidRefreshTokenError');
errorType(TooManyAttemptsError, 'TooManyAttemptsError');

const LoginCodeRequested = builder.objectRef<{ expiresInSeconds: number }>('LoginCodeRequested').implement({
  description: 'The same answer whether or not the e-mail belongs to an account.',
  fields: (t) => ({ expiresInSeconds: t.exposeInt('expiresInSeconds') }),
});

const AuthSessionRef = builder.objectRef<IssuedSession>('AuthSession').implement({
  fields: (t) => ({
    accessToken: t.exposeString('accessToken', {
      description: 'Send as `Authorization: Bearer …`; valid 15 minutes.',
    }),
    refreshToken: t.exposeString('refreshToken', {
      description: 'Single use: refreshSession returns a new one.',
    }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', description: 'When the access token expires.' }),
    user: t.prismaField({
      type: UserRef,
      resolve: (query, session, _args, context) =>
        context.deps.db.prisma.user.findUniqueOrThrow({ ...query, where: { id: session.userId } }),
    }),
  }),
});

const SignOutSuccess = builder.objectRef<{ signedOut: true }>('SignOutSuccess').implement({
  fields: (t) => ({ signedOut: t.exposeBoolean('signedOut') }),
});

const secret = z.string().min(1).max(512);

builder.mutationFields((t) => ({
  signInWithPassword: t.field({
    type: AuthSessionRef,
    errors: { types: [InvalidCredentialsError, EmailNotVerifiedError, ClinicUnavailableError] },
    args: {
      email: t.arg.string({ required: true, validate: z.string().max(254) }),
      password: t.arg.string({ required: true, validate: secret }),
    },
    resolve: (_root, { email, password }, context) =>
      context.deps.auth.signInWithPassword(email, password, { ip: context.ip, userAgent: context.userAgent }),
  }),
  requestLoginCode: t.field({
    type: LoginCodeRequested,
    errors: {},
    args: { email: t.arg.string({ required: true, validate: z.string().max(254) }) },
    resolve: async (_root, { email }, context) => ({
      // Same body, known e-mail or not (see login-codes.ts).
      expiresInSeconds: await context.deps.auth.codes.request(email, context.ip),
    }),
  }),
  signInWithCode: t.field({
    type: AuthSessionRef,
    errors: { types: [InvalidCodeError, TooManyAttemptsError, ClinicUnavailableError] },
    args: {
      email: t.arg.string({ required: true, validate: z.string().max(254) }),
      code: t.arg.string({ required: true, validate: z.string().max(12) }),
    },
    resolve: (_root, { email, code }, context) =>
      context.deps.auth.signInWithCode(email, code.trim(), { ip: context.ip, userAgent: context.userAgent }),
  }),
  refreshSession: t.field({
    type: AuthSessionRef,
    errors: { types: [InvalidRefreshTokenError, ClinicUnavailableError] },
    args: { refreshToken: t.arg.string({ required: true, validate: secret }) },
    resolve: (_root, { refreshToken }, context) =>
      context.deps.auth.refresh(refreshToken, { ip: context.ip, userAgent: context.userAgent }),
  }),
  signOut: t.field({
    type: SignOutSuccess,
    errors: {},
    args: { refreshToken: t.arg.string({ required: true, validate: secret }) },
    resolve: async (_root, { refreshToken }, context) => {
      await context.deps.auth.signOut(refreshToken);
      return { signedOut: true as const };
    },
  }),
}));

builder.queryField('me', (t) =>
  t.prismaField({
    type: UserRef,
    nullable: true,
    description: 'The signed-in user; null when anonymous.',
    resolve: (query, _root, _args, context) =>
      context.viewer
        ? context.deps.db.prisma.user.findUnique({ ...query, where: { id: context.viewer.userId } })
        : null,
  }),
);
