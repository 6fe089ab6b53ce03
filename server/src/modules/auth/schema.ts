import { z } from 'zod';
import { asErrorData, builder, errorType } from '../../builder.js';
import type { Config } from '../../env.js';
import { ConflictError, ValidationError } from '../../errors.js';
import { ConsentWithdrawnError } from '../consents/errors.js';
import {
  AcceptedDocumentInput,
  acceptancesOf,
  type ConsentRequired,
  ConsentRequiredRef,
} from '../consents/schema.js';
import { type Acceptance, requireCurrent } from '../consents/service.js';
import { InvalidCodeError } from '../users/errors.js';
import { readUser, UserRef } from '../users/schema.js';
import { emailSchema, phoneSchema } from '../users/validation.js';
import {
  ClinicUnavailableError,
  EmailNotVerifiedError,
  InvalidCredentialsError,
  InvalidRefreshTokenError,
  TooManyAttemptsError,
} from './errors.js';
import type { IssuedSession, TwoFactorChallenge } from './service.js';

errorType(
  InvalidCredentialsError,
  'InvalidCredentialsError',
  'Wrong e-mail (or phone) or password; the answer does not say which (`INVALID_CREDENTIALS`).',
);
errorType(
  EmailNotVerifiedError,
  'EmailNotVerifiedError',
  'The e-mail address must be verified first (`EMAIL_NOT_VERIFIED`).',
);
errorType(
  ClinicUnavailableError,
  'ClinicUnavailableError',
  "The user's clinic is not ready: provisioning, failed or deleted (`CLINIC_UNAVAILABLE`).",
);
errorType(
  InvalidRefreshTokenError,
  'InvalidRefreshTokenError',
  'The refresh token is unknown, expired, revoked or spent (`INVALID_REFRESH_TOKEN`).',
);
errorType(
  TooManyAttemptsError,
  'TooManyAttemptsError',
  'Too many wrong codes: this one is spent; ask for a new one later (`TOO_MANY_ATTEMPTS`).',
);

const LoginCodeRequested = builder.objectRef<{ expiresInSeconds: number }>('LoginCodeRequested').implement({
  description: 'The same answer whether or not the e-mail belongs to an account.',
  fields: (t) => ({
    expiresInSeconds: t.exposeInt('expiresInSeconds', {
      description: 'How long the code is valid, in seconds.',
    }),
  }),
});

export const AuthSessionRef = builder.objectRef<IssuedSession>('AuthSession').implement({
  description: 'A signed-in session: a short-lived access token and a single-use refresh token.',
  fields: (t) => ({
    accessToken: t.exposeString('accessToken', {
      description: 'Send as `Authorization: Bearer …`; valid 15 minutes.',
    }),
    refreshToken: t.exposeString('refreshToken', {
      description: 'Single use: refreshSession returns a new one.',
    }),
    expiresAt: t.expose('expiresAt', { type: 'DateTime', description: 'When the access token expires.' }),
    user: t.field({
      type: UserRef,
      description: 'The user signed in.',
      // Read as the session's user (the caller may not be signed in yet): decision 011.
      resolve: async (session, _args, context) => {
        const viewer = await context.deps.auth.viewerFromAuthorization(`Bearer ${session.accessToken}`);
        const scope = viewer ?? { userId: session.userId, role: null, clinicId: null };
        const user = await readUser(context.scoped.as(scope), session.userId);
        if (!user) throw new Error('the signed-in user is not visible in its own scope');
        return user;
      },
    }),
  }),
});

const TwoFactorChallengeRef = builder.objectRef<TwoFactorChallenge>('TwoFactorChallenge').implement({
  description: 'The password was right; finish with verifyTwoFactor within 5 minutes.',
  isTypeOf: (value) => typeof (value as TwoFactorChallenge).challengeToken === 'string',
  fields: (t) => ({
    challengeToken: t.exposeString('challengeToken', {
      description: 'Pass to verifyTwoFactor with the code.',
    }),
  }),
});

/** AuthSession objects carry an accessToken; the union tells them from challenges by it. */
const isSession = (value: unknown): value is IssuedSession =>
  typeof (value as IssuedSession | undefined)?.accessToken === 'string';

const SignInResult = builder.unionType('MutationSignInWithPasswordResult', {
  description:
    'A session, a two-factor challenge to finish, documents to accept first, or why signing in was refused.',
  types: [
    AuthSessionRef,
    TwoFactorChallengeRef,
    ConsentRequiredRef,
    ConsentWithdrawnError,
    InvalidCredentialsError,
    EmailNotVerifiedError,
    ClinicUnavailableError,
    ValidationError,
  ],
  resolveType: (value) => {
    if (isSession(value)) return 'AuthSession';
    if (typeof (value as TwoFactorChallenge).challengeToken === 'string') return 'TwoFactorChallenge';
    if (Array.isArray((value as ConsentRequired).consentRequired)) return 'ConsentRequired';
    return (value as Error).name;
  },
});

const SignInWithCodeResult = builder.unionType('MutationSignInWithCodeResult', {
  description: 'A session, documents to accept first, or why signing in was refused.',
  types: [
    AuthSessionRef,
    ConsentRequiredRef,
    ConsentWithdrawnError,
    InvalidCodeError,
    TooManyAttemptsError,
    ClinicUnavailableError,
    ValidationError,
  ],
  resolveType: (value) => {
    if (isSession(value)) return 'AuthSession';
    if (Array.isArray((value as ConsentRequired).consentRequired)) return 'ConsentRequired';
    return (value as Error).name;
  },
});

/**
 * The `acceptedDocuments` of a sign-in, when they name every document at its current version;
 * otherwise null, and the problem joins `fields` (a ValidationError on that argument).
 */
function currentAcceptances(
  context: { deps: { config: Pick<Config, 'consentVersions'> } },
  acceptedDocuments: readonly { document: string; version: string }[],
  fields: { path: string[]; message: string }[],
): Acceptance[] | null {
  try {
    return requireCurrent(context.deps.config, acceptancesOf(acceptedDocuments), ['acceptedDocuments']);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    fields.push(...error.fields);
    return null;
  }
}

const SetupTwoFactorSuccess = builder
  .objectRef<{ secret: string; otpauthUrl: string }>('SetupTwoFactorSuccess')
  .implement({
    description:
      'A new TOTP secret for the authenticator app; enabled only once confirmTwoFactor accepts a code.',
    fields: (t) => ({
      secret: t.exposeString('secret', { description: 'Base32, for manual entry.' }),
      otpauthUrl: t.exposeString('otpauthUrl', { description: 'For a QR code.' }),
    }),
  });

const ConfirmTwoFactorSuccess = builder
  .objectRef<{ recoveryCodes: string[] }>('ConfirmTwoFactorSuccess')
  .implement({
    description: 'Two-factor sign-in is now on.',
    fields: (t) => ({
      recoveryCodes: t.exposeStringList('recoveryCodes', { description: 'Shown once; each works once.' }),
    }),
  });

const DisableTwoFactorSuccess = builder.objectRef<{ disabled: true }>('DisableTwoFactorSuccess').implement({
  description: 'Two-factor sign-in is off and the recovery codes are gone.',
  fields: (t) => ({ disabled: t.exposeBoolean('disabled', { description: 'Always true.' }) }),
});

const SignOutSuccess = builder.objectRef<{ signedOut: true }>('SignOutSuccess').implement({
  description: 'The session is ended (the same answer for an unknown token).',
  fields: (t) => ({ signedOut: t.exposeBoolean('signedOut', { description: 'Always true.' }) }),
});

const secret = z.string().min(1).max(512);

builder.mutationFields((t) => ({
  signInWithPassword: t.field({
    type: SignInResult,
    description:
      'Public: signs in with an e-mail, or with the phone of a member invited by SMS (exactly one of them).',
    args: {
      email: t.arg.string({ description: 'The account’s e-mail address.' }),
      phone: t.arg.string({ description: 'International format, e.g. +33612345678' }),
      password: t.arg.string({ required: true, description: 'The password (at most 512 characters).' }),
      acceptedDocuments: t.arg({
        type: [AcceptedDocumentInput],
        description:
          'Documents accepted with this sign-in, at their current versions: the answer to ConsentRequired or CONSENT_WITHDRAWN.',
      }),
    },
    resolve: async (_root, { email, phone, password, acceptedDocuments }, context) => {
      const parsedPhone = phone == null ? null : phoneSchema.safeParse(phone);
      const parsedEmail = email == null ? null : emailSchema.safeParse(email);
      const fields = [
        ...((email == null) === (phone == null)
          ? [{ path: ['email'], message: 'Give either an e-mail address or a phone number' }]
          : []),
        ...(parsedEmail && !parsedEmail.success
          ? [
              {
                path: ['email'],
                message: parsedEmail.error.issues[0]?.message ?? 'Enter a valid e-mail address',
              },
            ]
          : []),
        ...(parsedPhone && !parsedPhone.success
          ? [{ path: ['phone'], message: 'Phone must be in international format, e.g. +33612345678' }]
          : []),
        ...(password.length === 0 || password.length > 512
          ? [{ path: ['password'], message: 'Enter your password' }]
          : []),
      ];
      const acceptances = acceptedDocuments ? currentAcceptances(context, acceptedDocuments, fields) : null;
      if (fields.length > 0) return asErrorData(new ValidationError(fields));
      const login = parsedPhone?.success
        ? { phone: parsedPhone.data }
        : { email: parsedEmail?.data as string };
      try {
        return await context.deps.auth.signInWithPassword(
          login,
          password,
          { ip: context.ip, userAgent: context.userAgent },
          acceptances,
        );
      } catch (error) {
        if (
          error instanceof InvalidCredentialsError ||
          error instanceof EmailNotVerifiedError ||
          error instanceof ClinicUnavailableError ||
          error instanceof ConsentWithdrawnError
        ) {
          return asErrorData(error);
        }
        throw error;
      }
    },
  }),
  verifyTwoFactor: t.field({
    type: AuthSessionRef,
    description:
      'Public: finishes a sign-in that answered TwoFactorChallenge, with an authenticator code or a recovery code. INVALID_CODE, TOO_MANY_ATTEMPTS; CONSENT_WITHDRAWN (the code is not spent) when the privacy notice was withdrawn since; CLINIC_UNAVAILABLE when the clinic is no longer usable (deleted since the password, say).',
    errors: {
      types: [InvalidCodeError, TooManyAttemptsError, ConsentWithdrawnError, ClinicUnavailableError],
    },
    args: {
      challengeToken: t.arg.string({
        required: true,
        validate: secret,
        description: 'TwoFactorChallenge.challengeToken (valid 5 minutes).',
      }),
      code: t.arg.string({
        required: true,
        validate: z.string().max(20),
        description: 'The 6-digit authenticator code, or a recovery code.',
      }),
    },
    resolve: (_root, { challengeToken, code }, context) =>
      context.deps.auth.verifyTwoFactor(challengeToken, code, {
        ip: context.ip,
        userAgent: context.userAgent,
      }),
  }),
  setupTwoFactor: t.field({
    type: SetupTwoFactorSuccess,
    description: 'Signed-in users: starts enabling two-factor sign-in. CONFLICT when it is already on.',
    authScopes: { authenticated: true },
    errors: { types: [ConflictError] },
    resolve: (_root, _args, context) => context.deps.auth.twoFactor.setup(context.viewer?.userId as string),
  }),
  confirmTwoFactor: t.field({
    type: ConfirmTwoFactorSuccess,
    description:
      'Signed-in users: turns two-factor sign-in on with a first code from the app set up by setupTwoFactor, and ends every other session of the user (this one stays). INVALID_CODE; CONFLICT when it is already on.',
    authScopes: { authenticated: true },
    errors: { types: [InvalidCodeError, ConflictError] },
    args: {
      code: t.arg.string({
        required: true,
        validate: z.string().max(20),
        description: 'The 6-digit authenticator code.',
      }),
    },
    resolve: async (_root, { code }, context) => ({
      recoveryCodes: await context.deps.auth.twoFactor.confirm(
        context.viewer?.userId as string,
        code.trim(),
        context.viewer?.sessionId ?? null,
      ),
    }),
  }),
  disableTwoFactor: t.field({
    type: DisableTwoFactorSuccess,
    description:
      'Signed-in users: turns two-factor sign-in off (a no-op when it is off) and ends every other session of the user (this one stays). INVALID_CODE, TOO_MANY_ATTEMPTS.',
    authScopes: { authenticated: true },
    errors: { types: [InvalidCodeError, TooManyAttemptsError] },
    args: {
      code: t.arg.string({
        required: true,
        validate: z.string().max(20),
        description: 'A current authenticator code or a recovery code.',
      }),
    },
    resolve: async (_root, { code }, context) => {
      await context.deps.auth.twoFactor.disable(
        context.viewer?.userId as string,
        code,
        context.viewer?.sessionId ?? null,
      );
      return { disabled: true as const };
    },
  }),
  requestLoginCode: t.field({
    type: LoginCodeRequested,
    description:
      'Public: e-mails a 6-digit sign-in code if the address has an account; the answer is the same either way. Rate limited per address and per e-mail.',
    errors: {},
    // A malformed address is refused before any work: its answer says nothing about accounts.
    args: {
      email: t.arg.string({
        required: true,
        validate: emailSchema,
        description: 'The e-mail address to sign in with.',
      }),
    },
    resolve: async (_root, { email }, context) => ({
      // Same body, known e-mail or not (see login-codes.ts).
      expiresInSeconds: await context.deps.auth.codes.request(email, context.ip),
    }),
  }),
  signInWithCode: t.field({
    type: SignInWithCodeResult,
    description:
      "Public: signs in with the code requestLoginCode e-mailed (single use). A client's first sign-in, or one after a document changed, answers ConsentRequired and leaves the code usable: sign in again with it and `acceptedDocuments`. INVALID_CODE, TOO_MANY_ATTEMPTS, CLINIC_UNAVAILABLE, CONSENT_WITHDRAWN.",
    args: {
      email: t.arg.string({ required: true, description: 'The e-mail address the code was sent to.' }),
      code: t.arg.string({ required: true, description: 'The 6-digit code.' }),
      acceptedDocuments: t.arg({
        type: [AcceptedDocumentInput],
        description:
          'Documents accepted with this sign-in, at their current versions: the answer to ConsentRequired or CONSENT_WITHDRAWN.',
      }),
    },
    resolve: async (_root, { email, code, acceptedDocuments }, context) => {
      const parsedEmail = emailSchema.safeParse(email);
      const fields = [
        ...(parsedEmail.success
          ? []
          : [
              {
                path: ['email'],
                message: parsedEmail.error.issues[0]?.message ?? 'Enter a valid e-mail address',
              },
            ]),
        ...(code.length > 12 ? [{ path: ['code'], message: 'Enter the 6-digit code' }] : []),
      ];
      const acceptances = acceptedDocuments ? currentAcceptances(context, acceptedDocuments, fields) : null;
      if (fields.length > 0) return asErrorData(new ValidationError(fields));
      try {
        return await context.deps.auth.signInWithCode(
          parsedEmail.data as string,
          code.trim(),
          { ip: context.ip, userAgent: context.userAgent },
          acceptances,
        );
      } catch (error) {
        if (
          error instanceof InvalidCodeError ||
          error instanceof TooManyAttemptsError ||
          error instanceof ClinicUnavailableError ||
          error instanceof ConsentWithdrawnError
        ) {
          return asErrorData(error);
        }
        throw error;
      }
    },
  }),
  refreshSession: t.field({
    type: AuthSessionRef,
    description:
      'Public: trades a refresh token for a new session (the old token is spent; reusing a spent one ends the whole session). INVALID_REFRESH_TOKEN, CLINIC_UNAVAILABLE.',
    errors: { types: [InvalidRefreshTokenError, ClinicUnavailableError] },
    args: {
      refreshToken: t.arg.string({
        required: true,
        validate: secret,
        description: 'AuthSession.refreshToken.',
      }),
    },
    resolve: (_root, { refreshToken }, context) =>
      context.deps.auth.refresh(refreshToken, { ip: context.ip, userAgent: context.userAgent }),
  }),
  signOut: t.field({
    type: SignOutSuccess,
    description: 'Public: ends the session this refresh token belongs to (every token of its family).',
    errors: {},
    args: {
      refreshToken: t.arg.string({
        required: true,
        validate: secret,
        description: 'AuthSession.refreshToken.',
      }),
    },
    resolve: async (_root, { refreshToken }, context) => {
      await context.deps.auth.signOut(refreshToken);
      return { signedOut: true as const };
    },
  }),
}));

builder.queryField('me', (t) =>
  t.field({
    type: UserRef,
    nullable: true,
    description: 'Public: the signed-in user; null when anonymous.',
    resolve: (_root, _args, context) =>
      context.viewer ? readUser(context.scoped, context.viewer.userId) : null,
  }),
);
