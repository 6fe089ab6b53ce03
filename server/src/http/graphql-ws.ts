/**
 * GraphQL over WebSocket (graphql-ws, `graphql-transport-ws`) on the HTTP server's `/graphql`:
 * the upgrade's checks (served host, allowed origin, not stopping) and the glue that runs each
 * operation through yoga's envelop, so plugins, context and error masking are the same as over HTTP.
 */
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Context } from '../context.js';
import type { Config } from '../env.js';
import { isGraphQLError } from '../errors.js';
import type { Yoga } from './graphql.js';
import { isServedHost } from './hosts.js';
import { isAllowedOrigin } from './security.js';

export interface GraphQLWebSocket {
  /** Ends every open socket (1001, going away) and the operations on them. */
  closeSockets(): Promise<void>;
  /** Closes the WebSocket server itself, once the HTTP server no longer upgrades. */
  close(): Promise<void>;
}

interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

/**
 * Serves subscriptions (and queries, mutations) on `server`'s upgrades to `/graphql`.
 * @param stopping whether the app is stopping: new sockets are then refused (403).
 */
export function attachGraphQLWebSocket(
  server: Server,
  yoga: Yoga,
  config: Config,
  stopping: () => boolean,
): GraphQLWebSocket {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (!isServedHost(req.headers.host, config)) {
      socket.end('HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\n\r\n');
      return;
    }
    if (
      stopping() ||
      pathname !== '/graphql' ||
      !isAllowedOrigin(req.headers.origin, req.headers.host, config)
    ) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  const wsServer = useServer<Record<string, unknown>>(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
      onSubscribe: async (ctx, _id, payload) => {
        const requestId = randomUUID();
        const enveloped = yoga.getEnveloped({
          req: ctx.extra.request,
          requestId,
          params: payload,
          connectionParams: ctx.connectionParams,
        });
        // Parse and validation failures, limits included (graphql-armor throws some of them),
        // answer this operation with an error; thrown, they would close the whole socket (4500)
        // and every other subscription on it.
        let document: ReturnType<typeof enveloped.parse>;
        try {
          document = enveloped.parse(payload.query);
          const errors = enveloped.validate(enveloped.schema, document);
          if (errors.length > 0) return errors;
        } catch (error) {
          return [asOperationError(error)];
        }
        const operation = {
          schema: enveloped.schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
        };
        let contextValue: Context;
        try {
          contextValue = await enveloped.contextFactory();
        } catch (error) {
          // A token that is no longer valid: this operation answers UNAUTHENTICATED, then
          // completes, like an HTTP request would; the socket and its other operations stay.
          if (!isGraphQLError(error)) throw error;
          const refused = () => ({ errors: [error] });
          return {
            ...operation,
            rootValue: { execute: refused, subscribe: refused } satisfies EnvelopedRoot,
          };
        }
        return {
          ...operation,
          contextValue,
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe } satisfies EnvelopedRoot,
        };
      },
    },
    wss,
  );

  return {
    closeSockets: async () => {
      for (const client of wss.clients) client.close(1001, 'Server shutting down');
      await wsServer.dispose();
    },
    close: () => new Promise<void>((done) => wss.close(() => done())),
  };
}

/** A thrown parse or validation failure as an error of graphql-ws' own GraphQLError class. */
function asOperationError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  return new GraphQLError(isGraphQLError(error) ? error.message : 'Invalid operation', {
    extensions: isGraphQLError(error) ? error.extensions : undefined,
  });
}
