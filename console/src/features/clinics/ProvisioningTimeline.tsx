import { graphql } from '../../gql';
import type { ProvisioningTimeline_RunFieldsFragment } from '../../gql/graphql';
import { RunStatusBadge, StepStatusBadge } from '../../ui/badges';
import { formatDateTime, formatDuration } from '../../ui/format';
import { Empty } from '../../ui/states';

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

/** Each run as a timeline: one bar per step, placed and sized by when it ran and how long. */
export function ProvisioningTimeline({ runs }: { runs: Run[] }) {
  if (runs.length === 0) return <Empty>No provisioning runs recorded for this clinic.</Empty>;
  return (
    <ol className="timeline">
      {runs.map((run) => (
        <li key={run.id} className="timeline-run">
          <RunTimeline run={run} />
        </li>
      ))}
    </ol>
  );
}

function RunTimeline({ run }: { run: Run }) {
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
          {run.kind.toLowerCase()} <span className="muted">attempt {run.attempt}</span>
        </h3>
        <RunStatusBadge status={run.status} />
        <span className="muted">
          {formatDateTime(run.startedAt)} · {formatDuration(run.durationMs)}
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
