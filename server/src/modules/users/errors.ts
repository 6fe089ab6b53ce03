import { type ErrorCodeInfo, OnrampError } from '../../errors.js';

/** The codes of account input failures. */
export const USER_ERROR_CODES = {
  EMAIL_TAKEN: { description: 'The e-mail address already belongs to an account.', status: 409 },
  INVALID_CODE: { description: 'The code or token is wrong, expired, used or unknown.', status: 400 },
} as const satisfies Record<string, ErrorCodeInfo>;

/** Another account already uses this e-mail. */
export class EmailTakenError extends OnrampError {
  readonly code = 'EMAIL_TAKEN' as const;
  constructor() {
    super('An account with this e-mail already exists');
    this.name = 'EmailTakenError';
  }
}

/** Why a verification link did not work (see {@link InvalidCodeError.reason}). */
export type InvalidCodeReason = 'EXPIRED' | 'USED' | 'UNKNOWN';

/**
 * A code or link that is wrong, expired or already used. Sign-in, activation and 2FA codes give
 * one answer for all (a short code can be guessed; telling "used" from "wrong" would help).
 * Verification links say why (`reason`): their token is a 256-bit secret, so naming the reason
 * helps the person holding it and reveals nothing to anyone guessing.
 */
export class InvalidCodeError extends OnrampError {
  readonly code = 'INVALID_CODE' as const;
  constructor(
    message = 'This link is invalid or has expired',
    readonly reason: InvalidCodeReason | null = null,
  ) {
    super(message);
    this.name = 'InvalidCodeError';
  }
}
