/** GraphQL fields of the development sign-in links (sign-in-links.ts, docs/decisions/020). */
import { z } from 'zod';
import { builder } from '../../builder.js';
import { InvalidCodeError } from '../users/errors.js';
import { AuthSessionRef } from './schema.js';
import { SignInLinks } from './sign-in-links.js';

builder.queryField('signInLinkInTerminal', (t) =>
  t.boolean({
    description:
      'True in development: each start prints a one-time sign-in link for ONRAMP_ADMIN_EMAIL on the server’s standard output. Public, so the sign-in page can say so.',
    resolve: (_root, _args, context) => context.deps.config.env === 'development',
  }),
);

builder.mutationField('signInWithLink', (t) =>
  t.field({
    type: AuthSessionRef,
    description:
      'Public: signs in with the one-time link of the development start banner (single use, 15 minutes). Always INVALID_CODE in production.',
    errors: { types: [InvalidCodeError] },
    args: {
      token: t.arg.string({
        required: true,
        description: 'The 43-character token of the link (base64url).',
        validate: z.string().regex(/^[A-Za-z0-9_-]{43}$/, { error: 'This is not a sign-in link token' }),
      }),
    },
    resolve: async (_root, { token }, context) => {
      const { config, db, auth } = context.deps;
      const userId = await new SignInLinks({ config, prisma: db.prisma }).consume(token);
      return auth.startSession(userId, { ip: context.ip, userAgent: context.userAgent }, 'sign_in_link');
    },
  }),
);
