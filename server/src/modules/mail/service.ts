/**
 * Outgoing e-mail, the module's public face (other modules import only this file): the outbox
 * and its send policies (outbox.ts, after-commit.ts), the `send_email` job (delivery.ts), the transports
 * (transport.ts) and what failures may say (redaction.ts).
 */
export { CommittedMail } from './after-commit.js';
export { type DeliverMailDeps, deliverMail, MAIL_SEND_GRACE_MS } from './delivery.js';
export {
  type DevMailMessage,
  devMailbox,
  type EnqueueOptions,
  enqueueMail,
  MAIL_MAX_ATTEMPTS,
  MAIL_RETRY_AFTER_IMMEDIATE_FAILURE_MS,
  type MailDb,
  type MailSendPolicy,
  type OutgoingMail,
  sendMailNow,
  sendThenRecordMail,
  stageMail,
} from './outbox.js';
export { MailDeliveryError } from './redaction.js';
export { createMailTransport, type MailTransport, type TransportMessage } from './transport.js';
