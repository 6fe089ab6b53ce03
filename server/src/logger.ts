import pino, { type Logger } from 'pino';
import pinoPretty from 'pino-pretty';
import type { Config } from './env.js';

export type { Logger };

/** Keys whose values never reach a log line, at the top level or one object down. */
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
  'jwtSecret',
  'encryptionKey',
  'databasePassword',
  'connectionString',
];

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-master-key"]',
  'headers.authorization',
  'headers["x-master-key"]',
  'variables.*',
];

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
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError },
  };
  const pretty = { translateTime: 'SYS:HH:MM:ss' };
  if (config.env === 'development') {
    // Same pretty lines into a given destination (tests read them), else through a worker.
    if (destination) return pino(options, pinoPretty({ ...pretty, destination, sync: true }));
    return pino({ ...options, transport: { target: 'pino-pretty', options: pretty } });
  }
  if (destination) return pino(options, destination);
  return pino(options);
}
