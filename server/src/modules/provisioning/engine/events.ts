/**
 * The one provisioning event, from the engine through the event bus to GraphQL's
 * `ProvisioningEvent` (docs/decisions/043). `at` stays a Date all the way: the bus carries Dates
 * across processes (pubsub/wire.ts) and only the GraphQL `DateTime` scalar turns it into text.
 */
import type { ProvisioningRunKind, ProvisioningSubjectKind } from '../../../generated/central/enums.js';
import type { ProvisioningStepName } from '../step-names.js';

export type ProvisioningEventStatus = 'STARTED' | 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | 'SKIPPED';

/** What a run works on: a clinic, or an onboarding of a third-party application. */
export interface RunSubject {
  kind: ProvisioningSubjectKind;
  id: string;
  /** Its name (a clinic's, an onboarding's organisation or domain); kept on the run after a rollback. */
  name: string | null;
}

export interface ProvisioningEvent {
  runId: string;
  kind: ProvisioningRunKind;
  subject: RunSubject;
  step: ProvisioningStepName;
  status: ProvisioningEventStatus;
  attempt: number;
  message: string | null;
  at: Date;
  durationMs: number | null;
  /**
   * The run's outcome, on the event that ends it (recorded before it is published); null on the
   * others (absent from an instance older than this field). Whichever step a plan ends with, a
   * subscriber knows the run is over from this alone.
   */
  runStatus?: 'SUCCEEDED' | 'FAILED' | 'ROLLED_BACK' | null;
}

/** A clinic as a run's subject. */
export const clinicSubject = (id: string, name: string | null = null): RunSubject => ({
  kind: 'CLINIC',
  id,
  name,
});

/** The subject columns of a provisioning_runs row. */
export function subjectColumns(subject: RunSubject) {
  return {
    subjectKind: subject.kind,
    clinicId: subject.kind === 'CLINIC' ? subject.id : null,
    onboardingId: subject.kind === 'ONBOARDING' ? subject.id : null,
    subjectName: subject.name,
  };
}

/** The subject of a provisioning_runs row. */
export function subjectOf(run: {
  subjectKind: ProvisioningSubjectKind;
  clinicId: string | null;
  onboardingId: string | null;
  subjectName: string | null;
}): RunSubject {
  return {
    kind: run.subjectKind,
    id: (run.subjectKind === 'CLINIC' ? run.clinicId : run.onboardingId) ?? '',
    name: run.subjectName,
  };
}
