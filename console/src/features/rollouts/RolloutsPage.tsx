import { type FormEvent, useId, useState } from 'react';
import { useClient, useQuery } from 'urql';
import { useSubscriptionEvents } from '../../app/hooks';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import type { RolloutsPage_RolloutFieldsFragment } from '../../gql/graphql';
import { describeError, Empty, ErrorNotice, Loading } from '../../ui/states';
import { DateTime } from '../../ui/text';

graphql(`
  fragment RolloutsPage_RolloutFields on Rollout {
    id
    status
    pauseReason
    targetVersion
    canary
    continueWhenHealthy
    concurrency
    failureThreshold
    createdAt
    finishedAt
    counts {
      total
      done
      failed
      remaining
      running
    }
    clinics {
      clinicId
      clinicName
      position
      canary
      state
      attempts
      error
      dbStatus
      runId
    }
  }
`);

const RolloutsQuery = graphql(`
  query RolloutsPage_RolloutsQuery {
    rollouts(first: 10) {
      ...RolloutsPage_RolloutFields
    }
  }
`);

const ProgressSubscription = graphql(`
  subscription RolloutsPage_ProgressSubscription {
    rolloutProgress {
      ...RolloutsPage_RolloutFields
    }
  }
`);

const StartMutation = graphql(`
  mutation RolloutsPage_StartMutation($input: StartRolloutInput!) {
    startRollout(input: $input) {
      __typename
      ... on Rollout {
        ...RolloutsPage_RolloutFields
      }
      ... on ValidationError {
        fields {
          path
          message
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

// Pause, resume and abort answer the same: one operation, the action chosen by its variables.
const ActMutation = graphql(`
  mutation RolloutsPage_ActMutation($id: ID!, $pause: Boolean!, $resume: Boolean!, $abort: Boolean!) {
    pauseRollout(id: $id) @include(if: $pause) {
      __typename
      ...RolloutsPage_RolloutFields
      ... on Error {
        message
      }
    }
    resumeRollout(id: $id) @include(if: $resume) {
      __typename
      ...RolloutsPage_RolloutFields
      ... on Error {
        message
      }
    }
    abortRollout(id: $id) @include(if: $abort) {
      __typename
      ...RolloutsPage_RolloutFields
      ... on Error {
        message
      }
    }
  }
`);

type Rollout = RolloutsPage_RolloutFieldsFragment;

/** Rollouts of the clinic schema: start one, watch it live, pause, resume or abort it. */
export function RolloutsPage() {
  const client = useClient();
  const [{ data, fetching, error }] = useQuery({ query: RolloutsQuery, requestPolicy: 'cache-and-network' });
  // What the subscription and the mutations said last, by rollout: newer than the query's answer.
  const [live, setLive] = useState<Record<string, Rollout>>({});
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const subscription = useSubscriptionEvents(ProgressSubscription, {}, (event) => {
    const rollout = event.rolloutProgress as Rollout;
    setLive((current) => ({ ...current, [rollout.id]: rollout }));
  });

  const known = new Map<string, Rollout>();
  for (const rollout of (data?.rollouts ?? []) as Rollout[]) known.set(rollout.id, rollout);
  for (const rollout of Object.values(live)) known.set(rollout.id, rollout);
  const rollouts = [...known.values()].sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));

  const settle = (
    result:
      | { __typename: string; message?: string; fields?: { path: string[]; message: string }[] }
      | undefined,
    failure: string | undefined,
  ) => {
    if (failure) return setMessage(failure);
    if (!result) return setMessage('No answer');
    if (result.__typename === 'Rollout') {
      const rollout = result as unknown as Rollout;
      setLive((current) => ({ ...current, [rollout.id]: rollout }));
      setMessage(null);
    } else if (result.fields) {
      setMessage(result.fields.map((field) => `${field.path.at(-1)}: ${field.message}`).join('; '));
    } else setMessage(result.message ?? 'Failed');
  };

  const act = async (kind: 'pause' | 'resume' | 'abort', id: string) => {
    setBusy(true);
    const answer = await client
      .mutation(ActMutation, {
        id,
        pause: kind === 'pause',
        resume: kind === 'resume',
        abort: kind === 'abort',
      })
      .toPromise();
    const data = answer.data;
    settle(
      (data?.pauseRollout ?? data?.resumeRollout ?? data?.abortRollout) as Parameters<typeof settle>[0],
      answer.error ? describeError(answer.error) : undefined,
    );
    setBusy(false);
  };

  return (
    <>
      <div className="page-header">
        <h1 tabIndex={-1}>Rollouts</h1>
      </div>
      <StartForm
        busy={busy}
        onStart={async (input) => {
          setBusy(true);
          const answer = await client.mutation(StartMutation, { input }).toPromise();
          settle(
            answer.data?.startRollout as Parameters<typeof settle>[0],
            answer.error ? describeError(answer.error) : undefined,
          );
          setBusy(false);
        }}
      />
      {message && (
        <p className="notice notice-error" role="alert">
          {message}
        </p>
      )}
      {subscription.error && <ErrorNotice error={subscription.error} />}
      {error && !data && <ErrorNotice error={error} />}
      {fetching && !data && <Loading />}
      {data && rollouts.length === 0 && <Empty>No rollout yet.</Empty>}
      {rollouts.map((rollout) => (
        <RolloutCard key={rollout.id} rollout={rollout} busy={busy} onAct={(kind) => act(kind, rollout.id)} />
      ))}
    </>
  );
}

interface StartInput {
  canary: number;
  concurrency: number;
  failureThreshold: number;
  continueWhenHealthy: boolean;
}

function StartForm({ busy, onStart }: { busy: boolean; onStart: (input: StartInput) => void }) {
  const [input, setInput] = useState({ canary: '1', concurrency: '4', failureThreshold: '0' });
  const [continueWhenHealthy, setContinue] = useState(false);
  const ids = { canary: useId(), concurrency: useId(), threshold: useId(), continue: useId() };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onStart({
      canary: Number(input.canary),
      concurrency: Number(input.concurrency),
      failureThreshold: Number(input.failureThreshold),
      continueWhenHealthy,
    });
  };
  const field = (id: string, label: string, name: keyof typeof input) => (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="number"
        value={input[name]}
        onChange={(event) => setInput((current) => ({ ...current, [name]: event.target.value }))}
      />
    </div>
  );
  return (
    <form className="filters card" onSubmit={submit} aria-label="Start a rollout">
      {field(ids.canary, 'Canary clinics', 'canary')}
      {field(ids.concurrency, 'Concurrency', 'concurrency')}
      {field(ids.threshold, 'Failure threshold', 'failureThreshold')}
      <div className="field">
        <label htmlFor={ids.continue}>
          <input
            id={ids.continue}
            type="checkbox"
            checked={continueWhenHealthy}
            onChange={(event) => setContinue(event.target.checked)}
          />{' '}
          Continue when the canaries are healthy
        </label>
      </div>
      <button type="submit" className="button button-primary" disabled={busy}>
        Start rollout
      </button>
    </form>
  );
}

function RolloutCard({
  rollout,
  busy,
  onAct,
}: {
  rollout: Rollout;
  busy: boolean;
  onAct: (kind: 'pause' | 'resume' | 'abort') => void;
}) {
  const active = rollout.status === 'RUNNING' || rollout.status === 'PAUSED';
  return (
    <article className="card rollout-card" data-testid="rollout" data-status={rollout.status}>
      <h2>
        Rollout to {rollout.targetVersion} <span data-testid="rollout-status">{rollout.status}</span>
      </h2>
      <p className="muted">
        Started <DateTime iso={rollout.createdAt} />; canary {rollout.canary}, concurrency{' '}
        {rollout.concurrency}, failure threshold {rollout.failureThreshold}
        {rollout.continueWhenHealthy ? ', continues when the canaries are healthy' : ''}
      </p>
      {rollout.pauseReason && rollout.status === 'PAUSED' && (
        <p className="notice" data-testid="pause-reason">
          Paused: {rollout.pauseReason}
        </p>
      )}
      <p data-testid="rollout-counts">
        {rollout.counts.done} done, {rollout.counts.failed} failed, {rollout.counts.remaining} remaining of{' '}
        {rollout.counts.total}
      </p>
      {active && (
        <div className="row-actions">
          {rollout.status === 'RUNNING' && (
            <button
              type="button"
              className="button button-small"
              disabled={busy}
              onClick={() => onAct('pause')}
            >
              Pause
            </button>
          )}
          {rollout.status === 'PAUSED' && (
            <button
              type="button"
              className="button button-small"
              disabled={busy}
              onClick={() => onAct('resume')}
            >
              Resume
            </button>
          )}
          <button
            type="button"
            className="button button-small button-danger"
            disabled={busy}
            onClick={() => onAct('abort')}
          >
            Abort
          </button>
        </div>
      )}
      <div className="table-wrap">
        <table className="data-table">
          <caption className="visually-hidden">Clinics of the rollout, in upgrade order</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Clinic</th>
              <th scope="col">State</th>
              <th scope="col">Attempts</th>
              <th scope="col">Health after</th>
              <th scope="col">Error</th>
              <th scope="col">Run</th>
            </tr>
          </thead>
          <tbody>
            {rollout.clinics.map((clinic) => (
              <tr key={clinic.clinicId} data-testid="rollout-clinic" data-state={clinic.state}>
                <td>{clinic.position + 1}</td>
                <td>
                  <Link href={`/clinics/${clinic.clinicId}`}>{clinic.clinicName ?? clinic.clinicId}</Link>
                  {clinic.canary && <span className="badge"> canary</span>}
                </td>
                <td>{clinic.state}</td>
                <td>{clinic.attempts}</td>
                <td>{clinic.dbStatus ?? ''}</td>
                <td>{clinic.error ?? ''}</td>
                <td>{clinic.runId && <Link href={`/runs/${clinic.runId}`}>run</Link>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </article>
  );
}
