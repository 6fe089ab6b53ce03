import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import type { Config } from './env.js';

export type { Logger };

/**
 * Keys whose values never reach a log line, at any depth of what is logged (compared without
 * regard to case, so header names match too). Whole `variables` objects are dropped: GraphQL
 * variables carry passwords, codes and tokens under names no list can foresee.
 */
const SECRET_KEYS = [
  'password',
  'adminPassword',
  'newPassword',
  'passwordHash',
  'secret',
  'token',
  'accessToken',
  'refreshToken',
  'challengeToken',
  'code',
  'otp',
  'masterKey',
  'master_key',
  'apiKey',
  'api_key',
  'api_secret',
  'jwtSecret',
  'encryptionKey',
  'databasePassword',
  'connectionString',
  'authorization',
  'cookie',
  'x-master-key',
  'variables',
];

const SECRET = new Set(SECRET_KEYS.map((key) => key.toLowerCase()));
const CENSOR = '[redacted]';

/**
 * A copy of `value` with every secret key's value replaced, however deep. Only plain objects and
 * arrays are walked: errors, dates and buffers are left to their serializers.
 */
export function redactSecrets(value: unknown, seen = new WeakSet<object>()): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return '[circular]';
  if (Array.isArray(value)) {
    seen.add(value);
    return value.map((item) => redactSecrets(item, seen));
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  seen.add(value);
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    copy[key] = SECRET.has(key.toLowerCase()) ? CENSOR : redactSecrets(inner, seen);
  }
  return copy;
}

/**
 * Errors are logged by type, message, stack and code only: driver errors carry their client
 * object, connection parameters included, which must never reach a log line.
 */
export function serializeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) };
  const { code, errno, syscall } = error as NodeJS.ErrnoException;
  return {
    type: error.name,
    message: error.message,
    stack: error.stack,
    ...(code !== undefined ? { errorCode: code } : {}),
    ...(errno !== undefined ? { errno, syscall } : {}),
    ...(error.cause !== undefined ? { cause: serializeError(error.cause) } : {}),
  };
}

export function createLogger(
  config: Pick<Config, 'env' | 'logLevel'>,
  destination?: pino.DestinationStream,
): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'onramp' },
    formatters: { log: (object) => redactSecrets(object) as Record<string, unknown> },
    serializers: { err: serializeError },
  };
  const pretty = { translateTime: 'SYS:HH:MM:ss' };
  if (config.env === 'development') {
    // Same pretty lines into a given destination (tests read them), else through a worker.
    if (destination)
      return redactingChildren(pino(options, pinoPretty({ ...pretty, destination, sync: true })));
    return redactingChildren(pino({ ...options, transport: { target: 'pino-pretty', options: pretty } }));
  }
  return redactingChildren(destination ? pino(options, destination) : pino(options));
}

/**
 * pino applies `formatters.log` to what each call logs but not to a child logger's bindings;
 * those go through the same redaction here. Children inherit this `child`, so it holds at any
 * depth of children.
 */
function redactingChildren(logger: Logger): Logger {
  const child = Object.getPrototypeOf(logger).child as Logger['child'];
  logger.child = function (this: Logger, bindings, options) {
    return child.call(this, redactSecrets(bindings) as typeof bindings, options);
  } as Logger['child'];
  return logger;
}
