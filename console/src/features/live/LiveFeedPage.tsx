import { useId, useMemo, useState } from 'react';
import { type ConnectionState, useConnection } from '../../app/connection';
import { Link } from '../../app/router';
import { StepStatusBadge } from '../../ui/badges';
import { formatDuration, formatTime } from '../../ui/format';
import { Empty, ErrorNotice, Loading } from '../../ui/states';
import { type FeedRun, useProvisioningFeed } from './ProvisioningFeed';

const RUN_LABEL: Record<FeedRun['status'], string> = {
  RUNNING: 'Running',
  SUCCEEDED: 'Succeeded',
  FAILED: 'Failed',
};

/** The clinic a run works on, by name; a link while the clinic exists. */
export function RunTitle({ run }: { run: FeedRun }) {
  const name = run.clinicName ?? `Run ${run.runId.slice(0, 8)}`;
  const removed = run.steps.some((step) => step.name === 'central_records' && step.status === 'ROLLED_BACK');
  if (run.kind === 'ONBOARDING') return <span>{name}</span>;
  if (removed)
    return (
      <span>
        {name} <span className="muted">(rolled back, no longer exists)</span>
      </span>
    );
  return <Link href={`/clinics/${run.clinicId}`}>{name}</Link>;
}

function runDuration(run: FeedRun): number | null {
  if (run.status === 'RUNNING') return null;
  return Date.parse(run.updatedAt) - Date.parse(run.startedAt);
}

export function RunCard({ run }: { run: FeedRun }) {
  // Runs seen happening on this page open expanded; the record's history opens folded.
  const [open, setOpen] = useState<boolean | null>(null);
  const expanded = open ?? (run.live || run.status === 'RUNNING');
  const stepsId = useId();
  const rolledBack = run.steps.filter((step) => step.status === 'ROLLED_BACK').length;
  const kind = run.kind && run.kind !== 'REGISTER' ? run.kind.toLowerCase() : null;
  return (
    <article
      className={`run-card run-${run.status.toLowerCase()}`}
      aria-label={`Run of ${run.clinicName ?? run.runId}`}
      data-run-id={run.runId}
    >
      <header className="run-card-header">
        <h2>
          <RunTitle run={run} />
          {kind && <span className="run-kind">{kind}</span>}
        </h2>
        <p className="run-meta">
          <span className={`badge badge-run-${run.status.toLowerCase()}`} data-testid="run-status">
            {RUN_LABEL[run.status]}
          </span>
          {run.attempt > 1 && <span>attempt {run.attempt}</span>}
          <span className="nowrap">started {formatTime(run.startedAt)}</span>
          {runDuration(run) !== null && <span className="nowrap">{formatDuration(runDuration(run))}</span>}
          {rolledBack > 0 && <span>{rolledBack} steps rolled back</span>}
        </p>
        {run.status === 'FAILED' && run.error && (
          <p className="run-error step-message step-message-error">{run.error}</p>
        )}
        <p className="run-actions">
          <button
            type="button"
            className="link-button"
            aria-expanded={expanded}
            aria-controls={stepsId}
            onClick={() => setOpen(!expanded)}
          >
            {expanded ? 'Hide steps' : `Show ${run.steps.length} steps`}
          </button>
          <Link href={`/runs/${run.runId}`}>Run details</Link>
        </p>
      </header>
      {expanded && (
        <ol className="step-list" id={stepsId}>
          {run.steps.map((step) => (
            <li key={`${step.name}:${step.attempt}`} className="step-row" data-step={step.name}>
              <code className="step-name">{step.name}</code>
              <StepStatusBadge status={step.status} />
              <span className="step-duration">
                {formatDuration(step.durationMs)}
                {step.rollbackMs !== null && <> · undo {formatDuration(step.rollbackMs)}</>}
              </span>
              {step.message && (
                <span
                  className={step.status === 'FAILED' ? 'step-message step-message-error' : 'step-message'}
                >
                  {step.message}
                </span>
              )}
            </li>
          ))}
        </ol>
      )}
    </article>
  );
}

/** What the indicator says, from the socket's real state and the database's. */
function liveState(connection: ConnectionState, refused: boolean): { state: string; text: string } {
  if (refused) return { state: 'refused', text: 'Live updates were refused; reload the page' };
  if (connection.api === 'unreachable' || connection.socket === 'closed')
    return { state: 'disconnected', text: 'Disconnected; reconnecting…' };
  if (connection.socket !== 'open') return { state: 'connecting', text: 'Connecting…' };
  if (connection.database === 'unreachable')
    return {
      state: 'degraded',
      text: 'Connected, but the database is unreachable: no events until it is back',
    };
  return { state: 'live', text: 'Live: every provisioning run as it happens' };
}

type Filter = 'ALL' | FeedRun['status'];

export function LiveFeedPage() {
  const { runs, loaded, error } = useProvisioningFeed();
  const connection = useConnection();
  const [filter, setFilter] = useState<Filter>('ALL');
  const [search, setSearch] = useState('');
  const searchId = useId();
  const refused = error?.graphQLErrors.some((e) => e.extensions?.code === 'FORBIDDEN') ?? false;
  const indicator = liveState(connection, refused);

  const counts = useMemo(() => {
    const result: Record<Filter, number> = { ALL: runs.length, RUNNING: 0, SUCCEEDED: 0, FAILED: 0 };
    for (const run of runs) result[run.status] += 1;
    return result;
  }, [runs]);
  const visible = useMemo(() => {
    const needle = search.trim().toLowerCase();
    return runs.filter(
      (run) =>
        (filter === 'ALL' || run.status === filter) &&
        (!needle || (run.clinicName ?? '').toLowerCase().includes(needle)),
    );
  }, [runs, filter, search]);

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Live provisioning</h1>
        <p className="live-indicator" role="status" data-state={indicator.state} data-testid="live-indicator">
          <span className="dot" aria-hidden="true" /> {indicator.text}
        </p>
      </div>
      {error && !refused && <ErrorNotice error={error} />}
      <form className="filters" onSubmit={(event) => event.preventDefault()}>
        <fieldset className="chips">
          <legend className="visually-hidden">Show runs</legend>
          {(['ALL', 'RUNNING', 'SUCCEEDED', 'FAILED'] as const).map((status) => (
            <button
              key={status}
              type="button"
              className="chip"
              aria-pressed={filter === status}
              onClick={() => setFilter(status)}
            >
              {status === 'ALL' ? 'All' : RUN_LABEL[status]} ({counts[status]})
            </button>
          ))}
        </fieldset>
        <div className="field">
          <label htmlFor={searchId}>Clinic</label>
          <input
            id={searchId}
            type="search"
            placeholder="Filter by name"
            value={search}
            onChange={(event) => setSearch(event.target.value)}
          />
        </div>
      </form>
      {!loaded && runs.length === 0 && <Loading label="Reading the recent runs…" />}
      {loaded && runs.length === 0 && (
        <Empty>
          No provisioning run recorded yet. Registrations appear here the moment they start, and their steps
          tick by as they run.
        </Empty>
      )}
      {runs.length > 0 && visible.length === 0 && <Empty>No run matches these filters.</Empty>}
      {visible.length > 0 && (
        <section className="run-list" aria-live="polite" aria-label="Provisioning runs, newest first">
          {visible.map((run) => (
            <RunCard key={run.runId} run={run} />
          ))}
        </section>
      )}
    </>
  );
}
