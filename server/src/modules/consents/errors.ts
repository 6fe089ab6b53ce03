import { type ErrorCodeInfo, OnrampError } from '../../errors.js';

/** The codes of consents' expected failures. */
export const CONSENT_ERROR_CODES = {
  CONSENT_WITHDRAWN: {
    description: 'The user withdrew their acceptance of the privacy notice; sign in accepting it again.',
    status: 403,
  },
} as const satisfies Record<string, ErrorCodeInfo>;

/** Sign-in after the privacy notice was withdrawn (docs/decisions/053). */
export class ConsentWithdrawnError extends OnrampError {
  readonly code = 'CONSENT_WITHDRAWN' as const;
  constructor() {
    super('You withdrew your consent to the privacy notice; accept it again to sign in');
    this.name = 'ConsentWithdrawnError';
  }
}
