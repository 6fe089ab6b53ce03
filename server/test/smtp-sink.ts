/**
 * A real SMTP server for tests, on 127.0.0.1 and a free port: no TLS, any (or no) login, every
 * accepted message parsed with mailparser. `failNext(n)` answers the next n messages with a 451
 * (temporary failure), to drive retry paths.
 */
import type { AddressInfo } from 'node:net';
import { type ParsedMail, simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface SmtpSink {
  /** `smtp://127.0.0.1:<port>`, for SMTP_URL. */
  url: string;
  /** Accepted messages, oldest first. */
  messages: ParsedMail[];
  /** Messages answered with a 451 so far. */
  readonly rejected: number;
  /** Answers the next `count` messages with `451 4.3.0 Try again later`. */
  failNext(count: number): void;
  /** The first accepted message (already here or still to come) that matches. */
  waitFor(predicate: (message: ParsedMail) => boolean, timeoutMs?: number): Promise<ParsedMail>;
  stop(): Promise<void>;
}

/** One message as `pnpm cluster` prints it: `[mail] to <addresses>: <subject>`, then its text. */
export function describeMessage(message: ParsedMail): string {
  const to = [message.to ?? []]
    .flat()
    .flatMap((group) => group.value.map((address) => address.address ?? address.name))
    .join(', ');
  return `[mail] to ${to}: ${message.subject ?? ''}\n${(message.text ?? '').trimEnd()}\n`;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  const messages: ParsedMail[] = [];
  const waiters = new Set<(message: ParsedMail) => void>();
  let failures = 0;
  let rejected = 0;

  const server = new SMTPServer({
    secure: false,
    // Advertised STARTTLS would make nodemailer upgrade and then refuse the self-signed cert.
    disabledCommands: ['STARTTLS'],
    authOptional: true,
    allowInsecureAuth: true,
    onAuth: (auth, _session, callback) => callback(null, { user: auth.username ?? 'anonymous' }),
    logger: false,
    banner: 'onramp test sink',
    closeTimeout: 1_000,
    onData(stream, _session, callback) {
      // The whole message must be read before answering, whatever the answer.
      simpleParser(stream).then(
        (parsed) => {
          if (failures > 0) {
            failures -= 1;
            rejected += 1;
            callback(Object.assign(new Error('Try again later'), { responseCode: 451 }));
            return;
          }
          messages.push(parsed);
          for (const waiter of waiters) waiter(parsed);
          callback(null, 'Queued');
        },
        (error: Error) => callback(Object.assign(error, { responseCode: 554 })),
      );
    },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Errors of single connections (a client hanging up) are not the test's concern.
  server.on('error', () => {});
  const { port } = server.server.address() as AddressInfo;

  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    get rejected() {
      return rejected;
    },
    failNext(count) {
      failures = count;
    },
    waitFor(predicate, timeoutMs = 10_000) {
      const found = messages.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const waiter = (message: ParsedMail) => {
          if (!predicate(message)) return;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(message);
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`smtp sink: no matching message within ${timeoutMs} ms`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
