import { queryRows } from '../../../../db/raw.js';
import { Prisma } from '../../../../generated/central/client.js';
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
      // Through pg beside Prisma's engine (db/raw.ts, decision 070).
      const queued = await queryRows(
        deps.prisma,
        Prisma.sql`SELECT 1 FROM mail_outbox
                   WHERE to_address = ${state.admin?.email ?? ''}::text AND kind = 'email_verification' LIMIT 1`,
      );
      if (queued.length === 0) throw new Error('verification e-mail missing from the outbox');
      return { note: 'queued for delivery' };
    },
  };
}
