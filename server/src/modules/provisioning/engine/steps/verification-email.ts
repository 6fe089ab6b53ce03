import type { Step } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';

/**
 * After the commit: the clinic admin's verification e-mail is in the outbox (the commit queued
 * it; the outbox delivers and retries). A failure is recorded, never undone.
 */
export function verificationEmailStep<S extends ProvisionState>(deps: Pick<StepDeps, 'prisma'>): Step<S> {
  return {
    name: 'verification_email',
    afterCommit: true,
    async run(state) {
      if (!state.admin?.userId) return { skipped: 'no clinic admin user to verify' };
      const queued = await deps.prisma.mailOutbox.count({
        where: { toAddress: state.admin?.email ?? '', kind: 'email_verification' },
      });
      if (queued === 0) throw new Error('verification e-mail missing from the outbox');
      return { note: 'queued for delivery' };
    },
  };
}
