import { builder } from '../../builder.js';
import { emailSchema } from '../registration/validation.js';
import { type DevMailMessage, devMailbox } from './service.js';

const MailStatusEnum = builder.enumType('MailStatus', {
  values: {
    PENDING: { description: 'Waiting for a (next) delivery attempt.' },
    SENT: { description: 'Accepted by the transport.' },
    FAILED: { description: 'Every attempt failed; not retried.' },
  } as const,
});

const MailMessageRef = builder.objectRef<DevMailMessage>('MailMessage').implement({
  description: 'A message the built-in dev mailbox accepted instead of sending it.',
  fields: (t) => ({
    id: t.exposeID('id'),
    to: t.exposeString('to'),
    subject: t.exposeString('subject'),
    text: t.exposeString('text'),
    html: t.exposeString('html', { nullable: true }),
    kind: t.exposeString('kind'),
    status: t.field({ type: MailStatusEnum, resolve: (message) => message.status }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    sentAt: t.expose('sentAt', { type: 'DateTime', nullable: true }),
  }),
});

builder.queryField('devMailbox', (t) =>
  t.field({
    type: [MailMessageRef],
    description:
      'Development and test only, super-admins (FORBIDDEN in production): what the dev mailbox accepted for `to`, newest first.',
    // The field exists in every environment so that the printed schema does not depend on one.
    authScopes: { devTools: true },
    args: { to: t.arg.string({ required: true, validate: emailSchema }) },
    resolve: (_root, { to }, context) =>
      devMailbox(context.deps.db.prisma, to, context.deps.config.encryptionKey),
  }),
);
