import type { ProvisionState, StepDeps } from '../state.js';
import { centralRecordsStep } from '../steps/central-records.js';
import { certificateStep } from '../steps/certificate.js';
import { clinicCommitStep } from '../steps/commit.js';
import { createDatabaseStep } from '../steps/create-database.js';
import { dnsStep } from '../steps/dns.js';
import type { TransactionHook } from '../steps/hooks.js';
import { migrateDatabaseStep } from '../steps/migrate-database.js';
import { clinicName } from '../steps/name.js';
import { seedProviderStep } from '../steps/seed-provider.js';
import { subdomainStep } from '../steps/subdomain.js';
import { verificationEmailStep } from '../steps/verification-email.js';
import { verifyDatabaseStep } from '../steps/verify-database.js';
import type { Plan } from './plan.js';

/** What registration adds to the steps of its run. */
export interface RegisterHooks<S> {
  /** In central_records' transaction: the admin user (and, hybrid, its retry job). */
  centralRecords?: TransactionHook<S>;
  /** In commit's transaction: the audit entry and the verification e-mail. */
  commit?: TransactionHook<S>;
}

/**
 * A clinic registration (step names in step-names.ts): central records, subdomain, its database
 * created, migrated, verified and seeded, DNS, certificate, commit, verification e-mail.
 * `resume` leaves out central_records, which exist already (a hybrid registration's next attempt):
 * the other steps are idempotent, so a resume simply runs them all again.
 */
export function registerPlan<S extends ProvisionState>(
  deps: StepDeps,
  hooks: RegisterHooks<S>,
  options: Pick<Plan<S>, 'suspendOn'> & { resume?: boolean } = {},
): Plan<S> {
  const name = clinicName<S>(deps);
  return {
    kind: 'REGISTER',
    suspendOn: options.suspendOn,
    steps: [
      ...(options.resume ? [] : [centralRecordsStep(deps, hooks.centralRecords)]),
      subdomainStep<S>(deps),
      createDatabaseStep<S>(deps),
      migrateDatabaseStep<S>(deps),
      verifyDatabaseStep<S>(deps),
      seedProviderStep<S>(),
      dnsStep(deps, name),
      certificateStep(deps, name),
      clinicCommitStep(deps, hooks.commit),
      verificationEmailStep<S>(deps),
    ],
  };
}
