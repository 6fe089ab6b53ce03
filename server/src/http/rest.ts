/**
 * What every REST route shares: one JSON body reader, one error mapper (domain error → status
 * and body, through {@link REST_STATUS}) and one way to send a reply. The routes
 * (onboarding/routes.ts, http/admin-routes.ts) throw domain errors or {@link HttpError} and let
 * {@link errorReply} answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_CODE_TABLE, type ErrorCode } from '../error-codes.js';
import { OnrampError, RateLimitedError, ValidationError } from '../errors.js';
import { CONTROL_CHARACTER_MESSAGE, findControlCharacter } from '../text-input.js';
import { isNestedDeeperThan, MAX_JSON_DEPTH } from './input.js';
import { type Language, say, type Text } from './language.js';
import { MAX_BODY_BYTES, sendJson } from './security.js';

/** A REST answer before it is sent. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** The language of the body's message, when it has one (Content-Language). */
  language?: Language;
}

/** A refusal of the HTTP layer itself (a malformed body, a missing header): status and code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly text: Text,
    readonly headers: Record<string, string> = {},
  ) {
    super(text.en);
    this.name = 'HttpError';
  }
}

/** The one map from an expected failure's code to its REST status (each module declares its own). */
export const REST_STATUS = Object.fromEntries(
  Object.entries(ERROR_CODE_TABLE).map(([code, { status }]) => [code, status]),
) as Record<ErrorCode, number>;

export interface ErrorReplyOptions {
  /** What a NOT_FOUND says instead of the error's own (English) message. */
  notFound?: Text;
}

/**
 * The answer to a thrown error: an {@link HttpError} as it says, an expected failure by its code
 * (snake_case in `error`), anything else 500 `internal_error` (the caller logs it).
 */
export function errorReply(error: unknown, lang: Language, options: ErrorReplyOptions = {}): Reply {
  if (error instanceof HttpError) {
    const { message, language } = say(error.text, lang);
    return {
      status: error.status,
      body: { success: false, error: error.code, message },
      headers: error.headers,
      language,
    };
  }
  if (error instanceof ValidationError) {
    // Field messages are English only, so the whole answer is.
    return {
      status: REST_STATUS.VALIDATION_FAILED,
      language: 'en',
      body: {
        success: false,
        error: 'validation_failed',
        message: error.message,
        errors: error.fields.map((field) => ({ field: field.path.join('.'), message: field.message })),
      },
    };
  }
  if (error instanceof RateLimitedError) {
    const { retryAfterSeconds: seconds, max } = error;
    const { message, language } = say(
      {
        en: `Too many requests; retry in ${seconds} s`,
        fr: `Trop de requêtes ; réessayez dans ${seconds} s`,
      },
      lang,
    );
    return {
      status: 429,
      language,
      body: { success: false, error: 'rate_limited', message, retry_after: seconds },
      headers: {
        'Retry-After': String(seconds),
        ...(max === undefined ? {} : { 'X-RateLimit-Limit': String(max) }),
        'X-RateLimit-Remaining': '0',
      },
    };
  }
  if (error instanceof OnrampError) {
    const { message, language } =
      error.code === 'NOT_FOUND' && options.notFound
        ? say(options.notFound, lang)
        : { message: error.message, language: 'en' as const };
    return {
      status: REST_STATUS[error.code],
      body: { success: false, error: error.code.toLowerCase(), message },
      language,
    };
  }
  const { message, language } = say({ en: 'Internal error', fr: 'Erreur interne' }, lang);
  return { status: 500, body: { success: false, error: 'internal_error', message }, language };
}

/** Sends `reply`, its Content-Language and headers over `extra`. */
export function sendReply(res: ServerResponse, reply: Reply, extra: Record<string, string> = {}): void {
  const language: Record<string, string> = reply.language ? { 'Content-Language': reply.language } : {};
  sendJson(res, reply.status, reply.body, { ...extra, ...language, ...reply.headers });
}

/** The request's JSON object body. @throws HttpError 400, ValidationError (control characters) */
export async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/(.+\+)?json\b/i.test(type)) {
    throw new HttpError(400, 'invalid_request', {
      en: 'Send a JSON body with Content-Type: application/json',
      fr: 'Envoyez un corps JSON avec Content-Type: application/json',
    });
  }
  return parseJsonObject(await readRawBody(req));
}

/** The body's bytes, at most {@link MAX_BODY_BYTES}. @throws HttpError 400 */
export async function readRawBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES)
      throw new HttpError(400, 'invalid_request', {
        en: 'The body is too large',
        fr: 'Le corps est trop grand',
      });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A raw body as a JSON object. @throws HttpError 400, ValidationError (control characters) */
export function parseJsonObject(raw: Buffer): Record<string, unknown> {
  let parsed: unknown;
  try {
    // Fatal: bytes that are not UTF-8 are refused, not silently replaced.
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch {
    throw new HttpError(400, 'invalid_json', {
      en: 'The body is not valid JSON',
      fr: "Le corps n'est pas du JSON valide",
    });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new HttpError(400, 'invalid_request', {
      en: 'The body must be a JSON object',
      fr: 'Le corps doit être un objet JSON',
    });
  }
  // Before anything walks it (validation, the Idempotency-Key fingerprint): deep JSON would
  // overflow their stacks.
  if (isNestedDeeperThan(parsed)) {
    throw new HttpError(400, 'invalid_json', {
      en: `The body is nested deeper than ${MAX_JSON_DEPTH} levels`,
      fr: `Le corps est imbriqué sur plus de ${MAX_JSON_DEPTH} niveaux`,
    });
  }
  const invalid = findControlCharacter(parsed);
  if (invalid) throw new ValidationError([{ path: invalid, message: CONTROL_CHARACTER_MESSAGE }]);
  return parsed as Record<string, unknown>;
}
