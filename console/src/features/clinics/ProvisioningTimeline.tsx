import { Link } from '../../app/router';
import { graphql } from '../../gql';
import type { ProvisioningTimeline_RunFieldsFragment } from '../../gql/graphql';
import { RunStatusBadge, StepStatusBadge } from '../../ui/badges';
import { formatDuration } from '../../ui/format';
import { Empty } from '../../ui/states';
import { DateTime } from '../../ui/text';

export const RunFieldsFragment = graphql(`
  fragment ProvisioningTimeline_RunFields on ProvisioningRun {
    id
    kind
    status
    attempt
    error
    startedAt
    finishedAt
    durationMs
    steps {
      name
      status
      attempt
      error
      startedAt
      finishedAt
      durationMs
    }
  }
`);

type Run = ProvisioningTimeline_RunFieldsFragment;

/** A repair as the audit log recorded it (repairs are not provisioning runs yet). */
export interface RepairEntry {
  id: string;
  at: string;
  actor: { email?: string | null; firstName: string; lastName: string } | null;
  actions: string[];
  before: string | null;
  after: string | null;
}

/**
 * Each run as a timeline: one bar per step, placed and sized by when it ran and how long; the
 * clinic's repairs in between, newest first.
 */
export function ProvisioningTimeline({
  runs,
  repairs = [],
  linkRuns = false,
}: {
  runs: Run[];
  repairs?: RepairEntry[];
  /** Link each run to its own page. */
  linkRuns?: boolean;
}) {
  if (runs.length === 0 && repairs.length === 0)
    return <Empty>No provisioning runs recorded for this clinic.</Empty>;
  const items = [
    ...runs.map((run) => ({
      at: run.startedAt,
      key: run.id,
      node: <RunTimeline run={run} link={linkRuns} />,
    })),
    ...repairs.map((repair) => ({
      at: repair.at,
      key: `repair-${repair.id}`,
      node: <Repair repair={repair} />,
    })),
  ].sort((a, b) => Date.parse(b.at) - Date.parse(a.at));
  return (
    <ol className="timeline">
      {items.map((item) => (
        <li key={item.key} className="timeline-run">
          {item.node}
        </li>
      ))}
    </ol>
  );
}

function Repair({ repair }: { repair: RepairEntry }) {
  const by = repair.actor
    ? `${repair.actor.firstName} ${repair.actor.lastName}${repair.actor.email ? ` (${repair.actor.email})` : ''}`
    : 'Onramp (automatic, at sign-in)';
  return (
    <div data-testid="repair-entry">
      <header className="timeline-header">
        <h3>repair</h3>
        <span className="badge badge-run-succeeded">
          {repair.before ?? '?'} → {repair.after ?? '?'}
        </span>
        <span className="muted">
          <DateTime iso={repair.at} /> · by {by}
        </span>
      </header>
      {repair.actions.length > 0 ? (
        <ul className="repair-actions">
          {repair.actions.map((action) => (
            <li key={action}>{action}</li>
          ))}
        </ul>
      ) : (
        <p className="muted">Nothing to do: already healthy.</p>
      )}
    </div>
  );
}

function RunTimeline({ run, link }: { run: Run; link: boolean }) {
  const start = Date.parse(run.startedAt);
  const ends = run.steps.map((step) =>
    step.finishedAt ? Date.parse(step.finishedAt) : Date.parse(step.startedAt) + (step.durationMs ?? 0),
  );
  const end = Math.max(run.finishedAt ? Date.parse(run.finishedAt) : start, ...ends, start + 1);
  const span = end - start;
  return (
    <>
      <header className="timeline-header">
        <h3>
          {link ? <Link href={`/runs/${run.id}`}>{run.kind.toLowerCase()}</Link> : run.kind.toLowerCase()}{' '}
          <span className="muted">attempt {run.attempt}</span>
        </h3>
        <RunStatusBadge status={run.status} />
        <span className="muted">
          <DateTime iso={run.startedAt} /> · {formatDuration(run.durationMs)}
        </span>
      </header>
      {run.error && (
        <p className="notice notice-error">
          <strong>Error:</strong> {run.error}
        </p>
      )}
      <table className="data-table timeline-steps">
        <caption className="visually-hidden">Steps of the {run.kind.toLowerCase()} run</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Status</th>
            <th scope="col">Duration</th>
            <th scope="col" className="timeline-bar-col">
              When
            </th>
          </tr>
        </thead>
        <tbody>
          {run.steps.map((step) => {
            const offset = ((Date.parse(step.startedAt) - start) / span) * 100;
            const width = Math.max(((step.durationMs ?? 0) / span) * 100, 0.8);
            return (
              <tr key={`${step.name}:${step.attempt}:${step.startedAt}`}>
                <th scope="row" data-label="Step">
                  <code>{step.name}</code>
                  {step.error && <div className="step-message step-message-error">{step.error}</div>}
                </th>
                <td data-label="Status">
                  <StepStatusBadge status={step.status} />
                </td>
                <td data-label="Duration">{formatDuration(step.durationMs)}</td>
                <td className="timeline-bar-col" aria-hidden="true">
                  <div className="timeline-track">
                    <div
                      className={`timeline-bar step-bar-${step.status.toLowerCase()}`}
                      style={{
                        left: `${Math.min(offset, 99.2)}%`,
                        width: `${Math.min(width, 100 - offset)}%`,
                      }}
                    />
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}
