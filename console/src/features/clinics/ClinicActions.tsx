import { useState } from 'react';
import { useMutation, useQuery } from 'urql';
import { Link } from '../../app/router';
import { graphql } from '../../gql';
import { ConfirmDialog } from '../../ui/ConfirmDialog';
import { formatDateTime } from '../../ui/format';
import { describeError } from '../../ui/states';
import { type Health, IntegrityReport } from './IntegrityReport';

const RepairMutation = graphql(`
  mutation ClinicActions_RepairMutation($clinicId: ID!) {
    repairClinic(clinicId: $clinicId) {
      __typename
      ... on RepairClinicSuccess {
        actions
        alreadyHealthy
        dataLost
        before {
          ...IntegrityReport_HealthFields
        }
        after {
          ...IntegrityReport_HealthFields
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const RetryMutation = graphql(`
  mutation ClinicActions_RetryProvisioningMutation($clinicId: ID!) {
    retryProvisioning(clinicId: $clinicId) {
      __typename
      ... on RetryProvisioningSuccess {
        clinic {
          id
          status
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

const DeleteMutation = graphql(`
  mutation ClinicActions_DeleteMutation($clinicId: ID!) {
    deleteClinic(clinicId: $clinicId) {
      __typename
      ... on DeleteClinicSuccess {
        clinicId
      }
      ... on Error {
        message
      }
    }
  }
`);

const ServersQuery = graphql(`
  query ClinicActions_ServersQuery {
    databaseServers {
      id
      name
      reachable
      clinics
    }
  }
`);

const MoveMutation = graphql(`
  mutation ClinicActions_MoveMutation($clinicId: ID!, $server: String!) {
    moveClinic(clinicId: $clinicId, server: $server) {
      __typename
      ... on MoveClinicSuccess {
        runId
        to
        downtimeMs
        rowsVerified {
          table
          rows
        }
      }
      ... on ProvisioningFailedError {
        step
        runId
      }
      ... on Error {
        message
      }
    }
  }
`);

const RestoreMutation = graphql(`
  mutation ClinicActions_RestoreMutation($clinicId: ID!) {
    restoreClinic(clinicId: $clinicId) {
      __typename
      ... on RestoreClinicSuccess {
        clinicId
        health {
          dbStatus
        }
      }
      ... on Error {
        message
      }
    }
  }
`);

type Action = 'repair' | 'retry' | 'delete' | 'move' | 'restore';

type Outcome =
  | {
      kind: 'repair';
      actions: string[];
      alreadyHealthy: boolean;
      dataLost: boolean;
      before: Health;
      after: Health;
    }
  | { kind: 'retry'; status: string }
  | { kind: 'move'; to: string; downtimeMs: number; rows: number; runId: string }
  | { kind: 'restore'; dbStatus: string }
  | { kind: 'error'; action: Action; message: string };

const ACTION_TITLE: Record<Action, string> = {
  repair: 'Repair',
  retry: 'Retry provisioning',
  delete: 'Delete',
  move: 'Move',
  restore: 'Restore',
};

export function ClinicActions({
  clinic,
  dbStatus,
  onChanged,
  onDeleted,
}: {
  clinic: {
    id: string;
    name: string;
    status: string;
    databaseName: string;
    databaseServer: string;
    /** A DELETED clinic: until when restoreClinic can bring it back. */
    restorableUntil?: string | null;
  };
  /** The latest health of its database: a READY clinic's MISSING database means data at stake. */
  dbStatus: string;
  onChanged: () => void;
  onDeleted: () => void;
}) {
  const [confirming, setConfirming] = useState<Action | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [repair, runRepair] = useMutation(RepairMutation);
  const [retry, runRetry] = useMutation(RetryMutation);
  const [remove, runDelete] = useMutation(DeleteMutation);
  const [move, runMove] = useMutation(MoveMutation);
  const [restore, runRestore] = useMutation(RestoreMutation);
  const [servers] = useQuery({ query: ServersQuery, pause: confirming !== 'move' });
  const [moveTo, setMoveTo] = useState('');
  const busy = repair.fetching || retry.fetching || remove.fetching || move.fetching || restore.fetching;
  const targets = (servers.data?.databaseServers ?? []).filter(
    (server) => server.reachable && server.name !== clinic.databaseServer,
  );

  async function perform(action: Action) {
    setConfirming(null);
    setOutcome(null);
    const variables = { clinicId: clinic.id };
    const fail = (message: string) => setOutcome({ kind: 'error', action, message });
    if (action === 'repair') {
      const result = await runRepair(variables);
      const answer = result.data?.repairClinic;
      if (result.error) return fail(describeError(result.error));
      if (answer?.__typename === 'RepairClinicSuccess') {
        setOutcome({ kind: 'repair', ...answer });
        return onChanged();
      }
      return fail(answer && 'message' in answer ? answer.message : 'Repair failed.');
    }
    if (action === 'move') {
      // The run's steps appear in the timeline below as they happen (provisioningProgress).
      const result = await runMove({ clinicId: clinic.id, server: moveTo });
      const answer = result.data?.moveClinic;
      if (result.error) return fail(describeError(result.error));
      if (answer?.__typename === 'MoveClinicSuccess') {
        const rows = answer.rowsVerified.reduce((sum, entry) => sum + entry.rows, 0);
        setOutcome({ kind: 'move', to: answer.to, downtimeMs: answer.downtimeMs, rows, runId: answer.runId });
        return onChanged();
      }
      onChanged();
      if (answer?.__typename === 'ProvisioningFailedError')
        return fail(`step ${answer.step} failed; the move was undone and the clinic stays where it was.`);
      return fail(answer && 'message' in answer ? answer.message : 'Move failed.');
    }
    if (action === 'retry') {
      const result = await runRetry(variables);
      const answer = result.data?.retryProvisioning;
      if (result.error) return fail(describeError(result.error));
      if (answer?.__typename === 'RetryProvisioningSuccess') {
        setOutcome({ kind: 'retry', status: answer.clinic.status });
        return onChanged();
      }
      return fail(answer && 'message' in answer ? answer.message : 'Retry failed.');
    }
    if (action === 'restore') {
      const result = await runRestore(variables);
      const answer = result.data?.restoreClinic;
      if (result.error) return fail(describeError(result.error));
      if (answer?.__typename === 'RestoreClinicSuccess') {
        setOutcome({ kind: 'restore', dbStatus: answer.health.dbStatus });
        return onChanged();
      }
      return fail(answer && 'message' in answer ? answer.message : 'Restore failed.');
    }
    const result = await runDelete(variables);
    const answer = result.data?.deleteClinic;
    if (result.error) return fail(describeError(result.error));
    if (answer?.__typename === 'DeleteClinicSuccess') return onDeleted();
    fail(answer && 'message' in answer ? answer.message : 'Delete failed.');
  }

  const canRetry = clinic.status === 'FAILED' || clinic.status === 'PENDING';
  const dataAtStake = clinic.status === 'READY' && dbStatus === 'MISSING';
  const deleted = clinic.status === 'DELETED';
  const until = clinic.restorableUntil ? formatDateTime(clinic.restorableUntil) : null;

  if (deleted)
    return (
      <section className="card" aria-labelledby="actions-title">
        <h2 id="actions-title">Actions</h2>
        <p data-testid="restorable-until">
          {until ? (
            <>
              Deleted. Its database waits in quarantine until <strong>{until}</strong>; restore brings the
              clinic back, with its data, until then. The purge removes it after.
            </>
          ) : (
            'Deleted, and its retention is over: nothing is left to restore.'
          )}
        </p>
        <div className="actions">
          <button
            type="button"
            className="button button-primary"
            disabled={busy || !until}
            onClick={() => setConfirming('restore')}
          >
            {restore.fetching ? 'Restoring…' : 'Restore'}
          </button>
        </div>
        <div aria-live="polite">
          {outcome?.kind === 'error' && (
            <div className="notice notice-error" role="alert">
              <strong>{ACTION_TITLE[outcome.action]} failed:</strong> {outcome.message}
            </div>
          )}
        </div>
        <ConfirmDialog
          open={confirming === 'restore'}
          title={`Restore ${clinic.name}?`}
          confirmLabel="Restore now"
          onConfirm={() => perform('restore')}
          onCancel={() => setConfirming(null)}
        >
          <p>
            Brings the database <code>{clinic.databaseName}</code> back from quarantine, rows intact, and
            makes the clinic READY again: its users sign in as before and its subdomain is published again.
          </p>
        </ConfirmDialog>
      </section>
    );

  return (
    <section className="card" aria-labelledby="actions-title">
      <h2 id="actions-title">Actions</h2>
      <div className="actions">
        <button
          type="button"
          className="button button-primary"
          disabled={busy}
          onClick={() => setConfirming('repair')}
        >
          {repair.fetching ? 'Repairing…' : 'Repair'}
        </button>
        <button
          type="button"
          className="button"
          disabled={busy || !canRetry}
          onClick={() => setConfirming('retry')}
        >
          {retry.fetching ? 'Retrying…' : 'Retry provisioning'}
        </button>
        <button
          type="button"
          className="button"
          disabled={busy || clinic.status !== 'READY'}
          onClick={() => setConfirming('move')}
        >
          {move.fetching ? 'Moving…' : 'Move'}
        </button>
        <button
          type="button"
          className="button button-danger"
          disabled={busy}
          onClick={() => setConfirming('delete')}
        >
          {remove.fetching ? 'Deleting…' : 'Delete'}
        </button>
      </div>
      {!canRetry && <p className="hint">Retry is for clinics whose provisioning failed or is pending.</p>}

      <div aria-live="polite">
        {outcome?.kind === 'error' && (
          <div className="notice notice-error" role="alert">
            <strong>{ACTION_TITLE[outcome.action]} failed:</strong> {outcome.message}
          </div>
        )}
        {outcome?.kind === 'restore' && (
          <div className="notice notice-success" data-testid="restore-result">
            Restored: the clinic is READY again; its database is {outcome.dbStatus}.
          </div>
        )}
        {outcome?.kind === 'retry' && (
          <div className="notice notice-success">
            Provisioning restarted; the clinic is now {outcome.status}.
          </div>
        )}
        {outcome?.kind === 'move' && (
          <div className="notice notice-success" data-testid="move-result">
            Moved to {outcome.to}: {outcome.rows} rows verified, writes frozen for {outcome.downtimeMs} ms.{' '}
            <Link href={`/runs/${outcome.runId}`}>See the run</Link>
          </div>
        )}
        {outcome?.kind === 'repair' && (
          <div className="repair-result" data-testid="repair-result">
            {outcome.dataLost && (
              <p className="notice notice-error" role="alert" data-testid="data-lost">
                <strong>Its data is gone:</strong> the database was missing with no copy in quarantine, and
                repair created an empty one. The super-admins were alerted; restore a backup if there is one.
              </p>
            )}
            <p className="notice notice-success">
              {outcome.alreadyHealthy
                ? 'The database was already healthy; nothing to do.'
                : `Repaired: ${outcome.actions.length} action${outcome.actions.length === 1 ? '' : 's'} taken.`}
            </p>
            {outcome.actions.length > 0 && (
              <ol className="repair-actions">
                {outcome.actions.map((action) => (
                  <li key={action}>{action}</li>
                ))}
              </ol>
            )}
            <div className="before-after">
              <div>
                <h3>Before</h3>
                <IntegrityReport health={outcome.before} compact />
              </div>
              <div>
                <h3>After</h3>
                <IntegrityReport health={outcome.after} compact />
              </div>
            </div>
          </div>
        )}
      </div>

      <ConfirmDialog
        open={confirming === 'repair'}
        title={`Repair ${clinic.name}?`}
        confirmLabel="Repair now"
        onConfirm={() => perform('repair')}
        onCancel={() => setConfirming(null)}
      >
        {dataAtStake && (
          <p className="notice notice-error" data-testid="data-loss-warning">
            <strong>The database of this clinic is missing.</strong> If a copy waits in quarantine, repair
            restores it from there; otherwise its data is gone; repair creates an empty database.
          </p>
        )}
        <p>
          Recreates whatever is missing — its role and grants, migrations, dropped tables and the admin's
          provider record. Existing data is kept.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirming === 'retry'}
        title={`Retry provisioning ${clinic.name}?`}
        confirmLabel="Retry now"
        onConfirm={() => perform('retry')}
        onCancel={() => setConfirming(null)}
      >
        <p>Runs the remaining provisioning steps again. Progress appears below and in the live feed.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirming === 'move'}
        title={`Move ${clinic.name} to another server?`}
        confirmLabel="Move now"
        onConfirm={() => {
          if (moveTo) perform('move');
        }}
        onCancel={() => setConfirming(null)}
      >
        <p>
          Copies its database to the chosen server while it stays in use, then freezes its writes for a moment
          (usually well under a second), switches it over and keeps the old copy in quarantine.
        </p>
        <label>
          Target server{' '}
          <select
            value={moveTo}
            onChange={(event) => setMoveTo(event.target.value)}
            data-testid="move-target"
          >
            <option value="">{servers.fetching ? 'Loading servers…' : 'Choose a server'}</option>
            {targets.map((server) => (
              <option key={server.id} value={server.name}>
                {server.name} ({server.clinics} clinic{server.clinics === 1 ? '' : 's'})
              </option>
            ))}
          </select>
        </label>
        {!servers.fetching && targets.length === 0 && (
          <p className="hint">No other reachable server is configured (CLINIC_DATABASE_SERVERS).</p>
        )}
      </ConfirmDialog>
      <ConfirmDialog
        open={confirming === 'delete'}
        title={`Delete ${clinic.name}?`}
        confirmLabel="Delete clinic"
        danger
        onConfirm={() => perform('delete')}
        onCancel={() => setConfirming(null)}
      >
        <p>
          Closes the clinic: its users can no longer sign in. The database <code>{clinic.databaseName}</code>{' '}
          is kept in quarantine for the retention period (<code>CLINIC_DELETE_RETENTION</code>, 30 days by
          default), during which <code>restoreClinic</code> brings the clinic back; the purge removes it
          after.
        </p>
      </ConfirmDialog>
    </section>
  );
}
