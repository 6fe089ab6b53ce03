import { useQuery } from 'urql';
import { graphql } from '../../gql';

const HeldServersQuery = graphql(`
  query HeldServers_ServersQuery {
    databaseServers {
      id
      name
      held
      reason
    }
  }
`);

/**
 * Clinic database servers held because they answered where a recorded server with live clinics
 * was expected (docs/decisions/090): nothing is placed on them until they are released. Shown
 * above the clinics, since the clinics of the recorded server are the ones at stake.
 */
export function HeldServers() {
  const [{ data }] = useQuery({ query: HeldServersQuery, requestPolicy: 'cache-and-network' });
  const held = (data?.databaseServers ?? []).filter((server) => server.held);
  if (held.length === 0) return null;
  return (
    <div className="notice notice-warn" role="alert" data-testid="held-servers">
      {held.map((server) => (
        <p key={server.id}>
          Clinic database server <strong>{server.name}</strong> gets no clinic. {server.reason}.
        </p>
      ))}
    </div>
  );
}
