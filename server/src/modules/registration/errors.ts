import { OnrampError } from '../../errors.js';

/** Another account already uses this e-mail. */
export class EmailTakenError extends OnrampError {
  readonly code = 'EMAIL_TAKEN' as const;
  constructor() {
    super('An account with this e-mail already exists');
    this.name = 'EmailTakenError';
  }
}

/** A verification link that is wrong, expired or already used: one answer for all. */
export class InvalidCodeError extends OnrampError {
  readonly code = 'INVALID_CODE' as const;
  constructor(message = 'This link is invalid or has expired') {
    super(message);
    this.name = 'InvalidCodeError';
  }
}
