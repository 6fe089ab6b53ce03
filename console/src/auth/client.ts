import { authExchange } from '@urql/exchange-auth';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import { Client, cacheExchange, fetchExchange, mapExchange, subscriptionExchange } from 'urql';
import { connection } from '../app/connection';
import { graphql } from '../gql';
import type { AuthSessionFields, SessionStore } from './session';

export const SessionFieldsFragment = graphql(`
  fragment ConsoleClient_SessionFields on AuthSession {
    accessToken
    refreshToken
    expiresAt
    user {
      id
      email
      firstName
      lastName
      role
    }
  }
`);

const RefreshSessionMutation = graphql(`
  mutation ConsoleClient_RefreshSessionMutation($refreshToken: String!) {
    refreshSession(refreshToken: $refreshToken) {
      __typename
      ...ConsoleClient_SessionFields
    }
  }
`);

const SignOutMutation = graphql(`
  mutation ConsoleClient_SignOutMutation($refreshToken: String!) {
    signOut(refreshToken: $refreshToken) {
      __typename
    }
  }
`);

const GRAPHQL_PATH = '/graphql';

function wsUrl(): string {
  const url = new URL(GRAPHQL_PATH, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.toString();
}

function isUnauthenticated(error: { graphQLErrors: readonly { extensions?: Record<string, unknown> }[] }) {
  return error.graphQLErrors.some((e) => e.extensions?.code === 'UNAUTHENTICATED');
}

export interface ConsoleClient {
  client: Client;
  signOut(): Promise<void>;
  dispose(): void;
}

/**
 * One urql client per signed-in (or anonymous) epoch: HTTP for queries and mutations, graphql-ws
 * for subscriptions, both authenticated with the in-memory access token and refreshed through
 * `refreshSession` when it expires or the server answers UNAUTHENTICATED.
 */
export function createConsoleClient(session: SessionStore): ConsoleClient {
  // Refreshing must not go through the auth exchange it serves, hence a bare client.
  const bare = new Client({
    url: GRAPHQL_PATH,
    exchanges: [fetchExchange],
    requestPolicy: 'network-only',
    preferGetMethod: false,
  });
  session.setRefresher(async (refreshToken) => {
    const result = await bare.mutation(RefreshSessionMutation, { refreshToken }).toPromise();
    const answer = result.data?.refreshSession;
    if (answer?.__typename === 'AuthSession') return answer as AuthSessionFields;
    // Only the server's typed answer ends the session; an outage (network, or the database
    // behind an INTERNAL error) is no verdict on the token: keep it for the next try.
    if (!answer) {
      connection.reportFailure();
      throw result.error ?? new Error('no answer to refreshSession');
    }
    return null;
  });

  let lastToken: string | undefined;
  const ws: WsClient = createWsClient({
    url: wsUrl(),
    lazy: true,
    // Keep subscriptions alive across server restarts and network blips.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: () => true,
    // graphql-ws waits 1 s + 0.3–3 s before the first retry; the reconnect after a token refresh
    // (below) should not leave a gap that long in the live pages. Later retries back off to 30 s.
    retryWait: (retries) =>
      new Promise((resolve) =>
        setTimeout(resolve, Math.min(250 * 2 ** retries, 30_000) * (0.5 + Math.random())),
      ),
    // The live indicators follow the socket's real state, not the hope that it is up.
    on: {
      connecting: () => connection.setSocket('connecting'),
      connected: () => connection.setSocket('open'),
      closed: () => connection.setSocket('closed'),
    },
    connectionParams: async () => {
      const current = session.needsRefresh() ? await session.refresh() : session.session;
      lastToken = current?.accessToken;
      return current ? { authorization: `Bearer ${current.accessToken}` } : {};
    },
  });
  // The server authenticates each subscription with the token the socket connected with; after a
  // refresh, reconnect so that new subscriptions (and resubscriptions) carry the fresh one.
  const unsubscribe = session.subscribe(() => {
    const token = session.session?.accessToken;
    if (lastToken && token && token !== lastToken) ws.terminate();
  });

  const client = new Client({
    url: GRAPHQL_PATH,
    // urql sends short queries as GET by default; the API's CSRF protection refuses a GET without
    // a preflight header, and nothing between here and the API caches GETs. JSON POST it is.
    preferGetMethod: false,
    exchanges: [
      cacheExchange,
      // Tells an outage from an answer (app/connection.ts): network errors and masked internal
      // errors make the monitor probe `health`; any good answer lets it check for a recovery.
      mapExchange({
        onResult(result) {
          const internal = result.error?.graphQLErrors.some(
            (error) => error.extensions?.code === 'INTERNAL_SERVER_ERROR',
          );
          if (result.error?.networkError || internal) connection.reportFailure();
          else if (result.data) connection.reportSuccess();
        },
      }),
      authExchange(async (utils) => ({
        addAuthToOperation(operation) {
          const token = session.session?.accessToken;
          return token ? utils.appendHeaders(operation, { Authorization: `Bearer ${token}` }) : operation;
        },
        willAuthError: () => session.session !== null && session.needsRefresh(),
        didAuthError: (error) => isUnauthenticated(error),
        async refreshAuth() {
          await session.refresh();
        },
      })),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({
            unsubscribe: ws.subscribe({ ...request, query: request.query ?? '' }, sink),
          }),
        }),
      }),
    ],
  });

  return {
    client,
    async signOut() {
      const refreshToken = session.refreshToken;
      // Revoke server-side first; a failure to reach the server still signs out locally.
      if (refreshToken) await bare.mutation(SignOutMutation, { refreshToken }).toPromise();
      session.signOut();
    },
    dispose() {
      unsubscribe();
      void ws.dispose();
    },
  };
}
