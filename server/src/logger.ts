import pino, { type Logger } from 'pino';
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

export function createLogger(config: Pick<Config, 'env' | 'logLevel'>, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    base: { service: 'onramp' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  if (config.env === 'development') {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss' } } });
  }
  return pino(options);
}
