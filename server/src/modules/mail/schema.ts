import { builder } from '../../builder.js';
import { emailSchema } from '../users/validation.js';
import { type DevMailMessage, devMailbox } from './service.js';

const MailStatusEnum = builder.enumType('MailStatus', {
  description: 'Delivery state of an outgoing e-mail.',
  values: {
    PENDING: { description: 'Waiting for a (next) delivery attempt.' },
    SENT: { description: 'Accepted by the transport.' },
    FAILED: { description: 'Every attempt failed; not retried.' },
  } as const,
});

const MailMessageRef = builder.objectRef<DevMailMessage>('MailMessage').implement({
  description: 'A message the built-in dev mailbox accepted instead of sending it.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The outbox row.' }),
    to: t.exposeString('to', { description: 'Recipient address.' }),
    subject: t.exposeString('subject', { description: 'Subject line.' }),
    text: t.exposeString('text', { description: 'Plain-text body.' }),
    html: t.exposeString('html', { nullable: true, description: 'HTML body, when the message has one.' }),
    kind: t.exposeString('kind', {
      description: 'What the message is for, e.g. `verify_email`, `login_code`.',
    }),
    status: t.field({
      type: MailStatusEnum,
      description: 'Delivery state.',
      resolve: (message) => message.status,
    }),
    createdAt: t.expose('createdAt', { type: 'DateTime', description: 'When it was queued.' }),
    sentAt: t.expose('sentAt', {
      type: 'DateTime',
      nullable: true,
      description: 'When the transport accepted it; null until then.',
    }),
  }),
});

builder.queryField('devMailbox', (t) =>
  t.field({
    type: [MailMessageRef],
    description:
      'Development and test only, super-admins (FORBIDDEN in production): what the dev mailbox accepted for `to`, newest first.',
    // The field exists in every environment so that the printed schema does not depend on one.
    authScopes: { devTools: true },
    args: {
      to: t.arg.string({
        required: true,
        validate: emailSchema,
        description: 'Recipient e-mail address (VALIDATION on a malformed one).',
      }),
    },
    resolve: (_root, { to }, context) =>
      devMailbox(context.deps.db.prisma, to, context.deps.config.encryptionKey),
  }),
);
