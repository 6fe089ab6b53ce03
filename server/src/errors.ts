/**
 * Errors shared by every module. Expected failures are data: a mutation returns a union of its
 * success type and error types implementing the `Error` interface. Authentication, authorization
 * and rate limits are GraphQL errors with `extensions.code` (README, "Architecture"; docs/decisions/054).
 */
import { GraphQLError } from 'graphql';

import type { ErrorCode } from './error-codes.js';

// Types only: error-codes.ts imports the modules' error files, which import this one.
export type { ErrorCode };

/**
 * What an expected failure's code means: to a GraphQL client (the `ErrorCode` enum's
 * description) and to a REST client (its status). Each module declares its own codes beside its
 * error classes (`auth/errors.ts`, `users/errors.ts`, …); error-codes.ts gathers them.
 */
export interface ErrorCodeInfo {
  description: string;
  /** The HTTP status a REST route answers with (http/rest.ts). */
  status: number;
}

/** Codes every module may use. */
export const COMMON_ERROR_CODES = {
  VALIDATION_FAILED: {
    description: 'An input is invalid; `ValidationError.fields` says which and why.',
    status: 422,
  },
  NOT_FOUND: { description: 'No such object (or none the caller may see).', status: 404 },
  CONFLICT: {
    description: 'The object is not in a state that allows this (already done, running, or changed).',
    status: 409,
  },
  // Provisioning's (registration and onboarding raise it too); it moves to provisioning/errors.ts
  // with the engine.
  PROVISIONING_FAILED: {
    description: 'Provisioning a clinic failed; everything it had done was rolled back.',
    status: 500,
  },
} as const satisfies Record<string, ErrorCodeInfo>;

/** An expected failure, safe to show its message to the caller. */
export abstract class OnrampError extends Error {
  abstract readonly code: ErrorCode;

  /** What GraphQL shows when this failure is raised as an error rather than returned as data. */
  get extensions(): Record<string, unknown> {
    return { code: this.code };
  }
}

export interface FieldError {
  /** Input path, e.g. ["input", "adminEmail"]. */
  path: string[];
  message: string;
}

export class ValidationError extends OnrampError {
  readonly code = 'VALIDATION_FAILED' as const;
  constructor(readonly fields: FieldError[]) {
    super(
      fields.length === 1 ? (fields[0]?.message ?? 'Invalid input') : `${fields.length} inputs are invalid`,
    );
    this.name = 'ValidationError';
  }

  override get extensions(): Record<string, unknown> {
    return { code: this.code, fields: this.fields };
  }
}

export class NotFoundError extends OnrampError {
  readonly code = 'NOT_FOUND' as const;
  constructor(what = 'resource') {
    super(`No such ${what}`);
    this.name = 'NotFoundError';
  }
}

export class ConflictError extends OnrampError {
  readonly code = 'CONFLICT' as const;
}

const ERROR_DATA = Symbol('onramp.errorData');

/**
 * graphql-js turns any returned Error instance into a field error. Where a field builds its own
 * result union (instead of the errors plugin), an expected failure travels as this plain copy;
 * the error types accept it alongside instances.
 */
export function asErrorData<E extends OnrampError>(error: E): E {
  return { ...error, name: error.name, message: error.message, [ERROR_DATA]: true } as unknown as E;
}

/** Whether `value` is an {@link asErrorData} copy of the error class called `name`. */
export function isErrorData(value: unknown, name: string): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    ERROR_DATA in value &&
    (value as { name?: unknown }).name === name
  );
}

/** Codes of the GraphQL errors (not data) that clients must handle. */
export type GraphQLErrorCode = 'UNAUTHENTICATED' | 'FORBIDDEN' | 'RATE_LIMITED';

export function unauthenticated(message = 'Sign in first'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
}

export function forbidden(message = 'Not allowed'): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'FORBIDDEN', http: { status: 403 } } });
}

/**
 * Invalid arguments of a field that returns no error union (a query, a connection): a GraphQL
 * error with `extensions.code` VALIDATION_FAILED and the offending fields, instead of the masked
 * "Unexpected error." a thrown {@link ValidationError} would become there.
 */
export function invalidArguments(fields: FieldError[]): GraphQLError {
  return new GraphQLError(fields.length === 1 ? (fields[0]?.message ?? 'Invalid input') : 'Invalid input', {
    extensions: { code: 'VALIDATION_FAILED', fields },
  });
}

/**
 * A rate limit is spent: the one signal every service throws (never a transport error), which
 * GraphQL answers as RATE_LIMITED with `retryAfter` ({@link expectedFailureError}) and REST as 429 with
 * `Retry-After` (http/rest.ts).
 */
export class RateLimitedError extends Error {
  /** Whole seconds, at least 1. */
  readonly retryAfterSeconds: number;
  constructor(
    retryAfterSeconds: number,
    /** The rule's budget, when the caller may be told it (X-RateLimit-Limit). */
    readonly max?: number,
    /** Which limit, for logs. */
    readonly limit?: string,
  ) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
    super(`rate limit${limit ? ` ${limit}` : ''} exceeded; retry in ${seconds} s`);
    this.name = 'RateLimitedError';
    this.retryAfterSeconds = seconds;
  }
}

export function rateLimited(retryAfterSeconds: number): GraphQLError {
  const retryAfter = Math.max(1, Math.ceil(retryAfterSeconds));
  return new GraphQLError(`Too many requests; retry in ${retryAfter} s`, {
    extensions: {
      code: 'RATE_LIMITED',
      retryAfter,
      http: { status: 429, headers: { 'Retry-After': String(retryAfter) } },
    },
  });
}

/**
 * An expected failure that reached GraphQL as an error instead of as data (a field whose type is
 * not a result union, e.g. a list or a connection) is shown as it is, with its code, rather than
 * masked as INTERNAL_SERVER_ERROR: graphql-js copies {@link OnrampError.extensions} onto it.
 * Pothos' own checks of input (paging arguments, cursors) are validation failures too.
 * @returns `located` when it is such a failure, else undefined (a real internal error).
 */
export function expectedFailureError(located: GraphQLError, original: unknown): GraphQLError | undefined {
  if (original instanceof OnrampError) return located;
  if (original instanceof RateLimitedError) {
    // The located copy keeps where it happened (path, positions); the refusal says what.
    const { message, extensions } = rateLimited(original.retryAfterSeconds);
    return new GraphQLError(message, {
      nodes: located.nodes,
      source: located.source,
      positions: located.positions,
      path: located.path,
      originalError: original,
      extensions,
    });
  }
  // Checked by name: Pothos' errors extend one of the two graphql builds (see app.ts). Their
  // extensions object is their own, made when they were thrown.
  if (original instanceof Error && original.name === 'PothosValidationError') {
    if (Object.isExtensible(located.extensions))
      Object.assign(located.extensions, { code: 'VALIDATION_FAILED' });
    return located;
  }
  return undefined;
}

/** Checked by name: graphql's CJS and ESM builds can both be loaded, breaking instanceof. */
export function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof Error && error.name === 'GraphQLError';
}
