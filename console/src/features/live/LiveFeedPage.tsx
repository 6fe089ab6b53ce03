import { useQuery } from 'urql';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { StepStatusBadge } from '../../ui/badges';
import { formatDuration, formatTime, shortId } from '../../ui/format';
import { Empty, ErrorNotice } from '../../ui/states';
import { type FeedRun, useProvisioningFeed } from './ProvisioningFeed';

const RunClinicQuery = graphql(`
  query LiveFeedPage_RunClinicQuery($id: ID!) {
    clinic(id: $id) {
      id
      name
      subdomain
    }
  }
`);

const RUN_LABEL: Record<FeedRun['status'], string> = {
  RUNNING: 'Running',
  SUCCEEDED: 'Succeeded',
  FAILED: 'Failed',
};

function RunTitle({ run }: { run: FeedRun }) {
  // The clinic row exists from the run's first step until a failure rolls it back, so its name is
  // looked up once the run succeeded or failed (before the undo reaches central_records).
  const [{ data }] = useQuery({
    query: RunClinicQuery,
    variables: { id: run.clinicId },
    pause: run.status === 'RUNNING',
  });
  const clinic = data?.clinic;
  const removed = run.steps.some((step) => step.name === 'central_records' && step.status === 'ROLLED_BACK');
  if (!clinic) return <span>Clinic {shortId(run.clinicId)}</span>;
  if (removed)
    return (
      <span>
        {clinic.name} <span className="muted">(rolled back, no longer exists)</span>
      </span>
    );
  return (
    <Link href={`/clinics/${clinic.id}`}>
      {clinic.name} <span className="muted">({clinic.subdomain})</span>
    </Link>
  );
}

export function RunCard({ run }: { run: FeedRun }) {
  const rolledBack = run.steps.filter((step) => step.status === 'ROLLED_BACK').length;
  return (
    <article className={`run-card run-${run.status.toLowerCase()}`} aria-label={`Run ${shortId(run.runId)}`}>
      <header className="run-card-header">
        <h2>
          <RunTitle run={run} />
        </h2>
        <p className="run-meta">
          <span className={`badge badge-run-${run.status.toLowerCase()}`} data-testid="run-status">
            {RUN_LABEL[run.status]}
          </span>
          {run.attempt > 1 && <span>attempt {run.attempt}</span>}
          <span>started {formatTime(run.startedAt)}</span>
          {rolledBack > 0 && <span>{rolledBack} steps rolled back</span>}
        </p>
      </header>
      <ol className="step-list">
        {run.steps.map((step) => (
          <li key={`${step.name}:${step.attempt}`} className="step-row" data-step={step.name}>
            <code className="step-name">{step.name}</code>
            <StepStatusBadge status={step.status} />
            <span className="step-duration">
              {formatDuration(step.durationMs)}
              {step.rollbackMs !== null && <> · undo {formatDuration(step.rollbackMs)}</>}
            </span>
            {step.message && (
              <span className={step.status === 'FAILED' ? 'step-message step-message-error' : 'step-message'}>
                {step.message}
              </span>
            )}
          </li>
        ))}
      </ol>
    </article>
  );
}

export function LiveFeedPage() {
  const { runs, error } = useProvisioningFeed();
  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Live provisioning</h1>
        <p className="live-indicator" role="status">
          <span className="dot" aria-hidden="true" /> Listening to every registration
        </p>
      </div>
      {error && <ErrorNotice error={error} />}
      {runs.length === 0 ? (
        <Empty>
          No provisioning since this page was opened. Registrations appear here the moment they start, and
          their steps tick by as they run.
        </Empty>
      ) : (
        <section className="run-list" aria-live="polite" aria-label="Provisioning runs, newest first">
          {runs.map((run) => (
            <RunCard key={run.runId} run={run} />
          ))}
        </section>
      )}
    </>
  );
}
