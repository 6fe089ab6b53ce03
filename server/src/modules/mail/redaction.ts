/**
 * What mail may leave in logs and in `mail_outbox.last_error`: the recipient's domain, and a
 * short summary of a failure without credentials or mailbox names.
 */

/** Longest `lastError` kept: enough for an SMTP reply line, never a message body. */
const MAX_ERROR_LENGTH = 300;

/** Logs name the recipient's domain only. */
export function recipientDomain(address: string): string {
  return `***@${address.slice(address.lastIndexOf('@') + 1)}`;
}

/**
 * A short summary of a send failure, safe to store and log: nodemailer's code, the SMTP reply
 * code and a truncated message, without credentials or mailbox names.
 */
export function summariseError(error: unknown, secrets: string[]): string {
  const { code, responseCode } = (error ?? {}) as { code?: unknown; responseCode?: unknown };
  let message = error instanceof Error ? error.message : String(error);
  for (const secret of secrets) message = message.split(secret).join('***');
  message = message
    .replace(/\b(smtps?:\/\/)[^@\s/]*@/gi, '$1***@')
    .replace(/[^\s<>"'@,;:]+@([^\s<>"',;:]+)/g, '***@$1')
    .replace(/\s+/g, ' ')
    .trim();
  const prefix = [
    typeof code === 'string' ? code : null,
    typeof responseCode === 'number' ? responseCode : null,
  ]
    .filter((part) => part !== null)
    .join(' ');
  const summary = prefix ? `${prefix}: ${message}` : message;
  return summary.length > MAX_ERROR_LENGTH ? `${summary.slice(0, MAX_ERROR_LENGTH - 1)}…` : summary;
}

/** The user name and password of an SMTP URL, raw and decoded. */
export function urlCredentials(url: string): string[] {
  const parsed = new URL(url);
  const parts = [parsed.username, parsed.password].flatMap((part) => {
    try {
      return [part, decodeURIComponent(part)];
    } catch {
      return [part];
    }
  });
  // Longest first, so a password containing the user name is removed whole.
  return [...new Set(parts.filter((part) => part.length > 0))].sort((a, b) => b.length - a.length);
}

/**
 * A failed send, carrying only a short redacted summary (stored as `lastError`): the SMTP
 * client's own error may hold the connection's options, credentials included.
 */
export class MailDeliveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MailDeliveryError';
  }
}

/** `error` as a {@link MailDeliveryError}'s summary, whatever threw it. */
export function deliveryErrorMessage(error: unknown): string {
  return error instanceof MailDeliveryError ? error.message : summariseError(error, []);
}
