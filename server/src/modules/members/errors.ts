import { type ErrorCodeInfo, OnrampError } from '../../errors.js';

/** The codes of members' expected failures. */
export const MEMBER_ERROR_CODES = {
  DELIVERY_FAILED: { description: 'The message could not be delivered; nothing was kept.', status: 502 },
} as const satisfies Record<string, ErrorCodeInfo>;

/** The invitation could not be delivered; nothing was kept. */
export class DeliveryFailedError extends OnrampError {
  readonly code = 'DELIVERY_FAILED' as const;
  constructor(channel: 'SMS' | 'EMAIL') {
    super(
      channel === 'SMS'
        ? 'The SMS could not be sent; nothing was saved. Try again in a moment or invite by e-mail.'
        : 'The e-mail could not be sent; nothing was saved. Try again in a moment.',
    );
    this.name = 'DeliveryFailedError';
  }
}
