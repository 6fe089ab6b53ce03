import { useState } from 'react';
import { useMutation } from 'urql';
import { useDebounced, useResilientQuery, useSubscriptionEvents } from '../../app/hooks';
import { graphql } from '../../gql';
import { ConfirmDialog } from '../../ui/ConfirmDialog';
import { describeError } from '../../ui/states';

const HeldServersQuery = graphql(`
  query HeldServers_ServersQuery {
    databaseServers {
      id
      name
      address
      held
      heldFor
      reason
    }
  }
`);

const ServerChangedSubscription = graphql(`
  subscription HeldServers_ServerChangedSubscription {
    databaseServerChanged {
      id
    }
  }
`);

const AcceptMutation = graphql(`
  mutation HeldServers_AcceptMutation($server: String!) {
    acceptDatabaseServer(server: $server) {
      __typename
      ... on DatabaseServer {
        id
        name
        held
      }
      ... on Error {
        message
      }
    }
  }
`);

interface HeldServer {
  id: string;
  name: string;
  address: string;
  heldFor?: string | null;
  reason?: string | null;
}

type Outcome = { kind: 'accepted'; name: string } | { kind: 'error'; name: string; message: string };

/**
 * Clinic database servers held because they answered where a recorded server with live clinics
 * was expected (docs/decisions/090): nothing is placed on them until they are released. Shown
 * above the clinics, since the clinics of the recorded server are the ones at stake. Live
 * (docs/decisions/094): read again whenever a hold begins or ends, by any instance or a shell
 * (databaseServerChanged), and after an outage. The console is for super-admins only (App.tsx),
 * who may accept; the server refuses anyone else.
 */
export function HeldServers() {
  const servers = useResilientQuery({ query: HeldServersQuery, requestPolicy: 'cache-and-network' });
  // Several holds may begin at one start: one read for the burst.
  const refetch = useDebounced(servers.refetch, 200);
  useSubscriptionEvents(ServerChangedSubscription, {}, refetch);
  const [accept, runAccept] = useMutation(AcceptMutation);
  // Kept here, not read from the list: the server may stop being held while the dialog is open.
  const [confirming, setConfirming] = useState<HeldServer | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const held = (servers.data?.databaseServers ?? []).filter((server) => server.held);

  async function perform(server: HeldServer) {
    setConfirming(null);
    setOutcome(null);
    const result = await runAccept({ server: server.id });
    const answer = result.data?.acceptDatabaseServer;
    // Whatever the answer, the list is read again: a CONFLICT means another operator (or the
    // recorded server found elsewhere) ended the hold first.
    servers.refetch();
    if (answer?.__typename === 'DatabaseServer' && !answer.held)
      return setOutcome({ kind: 'accepted', name: answer.name });
    const message = result.error
      ? describeError(result.error)
      : answer && 'message' in answer
        ? answer.message
        : 'The server did not accept it.';
    setOutcome({ kind: 'error', name: server.name, message });
  }

  return (
    <>
      {held.length > 0 && (
        <div className="notice notice-warn" role="alert" data-testid="held-servers">
          {held.map((server) => (
            <div key={server.id} className="held-server">
              <p>
                Clinic database server <strong>{server.name}</strong> gets no clinic. {server.reason}.
              </p>
              <button
                type="button"
                className="button button-small"
                aria-label={`Accept ${server.name}`}
                disabled={accept.fetching}
                onClick={() => {
                  setOutcome(null);
                  setConfirming(server);
                }}
              >
                {accept.fetching ? 'Accepting…' : 'Accept'}
              </button>
            </div>
          ))}
        </div>
      )}
      <div aria-live="polite">
        {outcome?.kind === 'accepted' && (
          <div className="notice notice-success" data-testid="held-accepted">
            Accepted: clinic database server {outcome.name} gets new clinics from now on.
          </div>
        )}
        {outcome?.kind === 'error' && (
          <div className="notice notice-error" role="alert" data-testid="held-accept-failed">
            <p>
              <strong>Accept {outcome.name} failed:</strong> {outcome.message}. The notice shows the servers
              as they are now (another operator may have been first, or its hold ended).
            </p>
          </div>
        )}
      </div>
      <ConfirmDialog
        open={confirming !== null}
        title={`Accept ${confirming?.name ?? ''}?`}
        confirmLabel="Accept server"
        danger
        onConfirm={() => {
          if (confirming) void perform(confirming);
        }}
        onCancel={() => setConfirming(null)}
      >
        {confirming && (
          <>
            <p>
              <strong>{confirming.name}</strong> gets new clinics from now on, on every instance:
              registrations and the warm pool use it like any other server.
            </p>
            <p>
              You decide that{' '}
              {confirming.heldFor ? (
                <>
                  clinic database server <strong>{confirming.heldFor}</strong>
                </>
              ) : (
                'the recorded server it stood in for'
              )}{' '}
              is not coming back at {confirming.address}: its clinics stay unavailable until you restore,
              repair or delete them.
            </p>
            <p className="hint">{confirming.reason}.</p>
          </>
        )}
      </ConfirmDialog>
    </>
  );
}
