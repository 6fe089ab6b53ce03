/**
 * Steps of a MOVE run, in run order (docs/decisions/049). Their names appear in events, in the run
 * records and in FAULT_INJECTION, beside the registration's (provisioning/step-names.ts).
 */
export const MOVE_STEP_NAMES = [
  'move_target',
  'move_publication',
  'move_subscription',
  'move_catch_up',
  'move_freeze',
  'move_final_catch_up',
  'move_sequences',
  'move_verify',
  'move_switch',
  'move_end_subscription',
  'move_quarantine_source',
] as const;

export type MoveStepName = (typeof MOVE_STEP_NAMES)[number];

/** What each step does, for the GraphQL enum of step names. */
export const MOVE_STEP_DESCRIPTIONS: Record<MoveStepName, string> = {
  move_target:
    "A move: clones the clinic's database from the template on the target server, with the clinic role and its grants.",
  move_publication: 'A move: publishes every table of the source database (logical replication).',
  move_subscription: 'A move: subscribes the target database to the publication (initial copy).',
  move_catch_up: 'A move: waits for the initial copy, then for the target to catch up with the source.',
  move_freeze:
    "A move: freezes writes on the source (the clinic role's logins refused, its sessions ended); the downtime starts.",
  move_final_catch_up: 'A move: waits until the target has applied every write the source committed.',
  move_sequences: 'A move: copies the values of the sequences (logical replication does not carry them).',
  move_verify: 'A move: counts the rows of every table on both copies; any difference undoes the move.',
  move_switch:
    'A move: points the central record at the target server; the clinic is writable again there (the downtime ends).',
  move_end_subscription: 'A move: drops the subscription, its replication slot and the publication.',
  move_quarantine_source:
    'A move: quarantines the source copy (kept until the purge, never dropped at once).',
};
