import { type ErrorCodeInfo, OnrampError } from '../../errors.js';

/** The codes of auth's expected failures. */
export const AUTH_ERROR_CODES = {
  INVALID_CREDENTIALS: {
    description: 'Wrong e-mail (or phone) or password; the answer does not say which.',
    status: 401,
  },
  TOO_MANY_ATTEMPTS: {
    description: 'Too many wrong codes: this one is spent; ask for a new one later.',
    status: 429,
  },
  CLINIC_UNAVAILABLE: {
    description: "The user's clinic is not ready (provisioning, failed or deleted).",
    status: 503,
  },
  EMAIL_NOT_VERIFIED: { description: 'The e-mail address must be verified first.', status: 403 },
  INVALID_REFRESH_TOKEN: {
    description: 'The refresh token is unknown, expired, revoked or spent.',
    status: 401,
  },
} as const satisfies Record<string, ErrorCodeInfo>;

/**
 * Wrong e-mail or password: one answer for both, so it reveals neither. Also the answer to a
 * right password whose sign-in lost a race with an end of every session of the user
 * (docs/decisions/089): only the password's holder sees that message, and signing in again would
 * tell them the password was right anyway.
 */
export class InvalidCredentialsError extends OnrampError {
  readonly code = 'INVALID_CREDENTIALS' as const;
  constructor(message = 'Wrong e-mail or password') {
    super(message);
    this.name = 'InvalidCredentialsError';
  }
}

export class EmailNotVerifiedError extends OnrampError {
  readonly code = 'EMAIL_NOT_VERIFIED' as const;
  constructor() {
    super('Confirm your e-mail address first; we can send the link again');
    this.name = 'EmailNotVerifiedError';
  }
}

export class ClinicUnavailableError extends OnrampError {
  readonly code = 'CLINIC_UNAVAILABLE' as const;
  constructor(message = 'Your clinic is not available right now; our team has been notified') {
    super(message);
    this.name = 'ClinicUnavailableError';
  }
}

export class InvalidRefreshTokenError extends OnrampError {
  readonly code = 'INVALID_REFRESH_TOKEN' as const;
  constructor() {
    super('This session has ended; sign in again');
    this.name = 'InvalidRefreshTokenError';
  }
}

/** The guessing budget of this e-mail is spent; ask again later. */
export class TooManyAttemptsError extends OnrampError {
  readonly code = 'TOO_MANY_ATTEMPTS' as const;
  constructor() {
    super('Too many wrong codes; request a new one later');
    this.name = 'TooManyAttemptsError';
  }
}
