/**
 * GraphQL over HTTP (graphql-yoga): the schema with its plugins, the per-request context, the
 * error mask and yoga's logging. The WebSocket transport (graphql-ws.ts) runs operations through
 * the same yoga instance, so both transports share plugins, context and masking.
 */
import type { IncomingMessage } from 'node:http';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { GraphQLError, NoSchemaIntrospectionCustomRule } from 'graphql';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Context, Deps } from '../context.js';
import { scopedRunner } from '../db/request-scope.js';
import { expectedFailureError, isGraphQLError } from '../errors.js';
import { useOperationMetrics } from '../metrics.js';
import { type SessionWatch, useSessionBoundSubscriptions } from '../modules/auth/session-watch.js';
import { schema } from '../schema.js';
import { clientAddress } from './client-address.js';
import type { GraphiQLAssets } from './graphiql.js';
import { GRAPHIQL_EXAMPLE_TABS } from './graphiql-examples.js';
import { isAllowedOrigin } from './security.js';

/** What the node adapter and the WebSocket server hand to yoga's context factory. */
export interface ServerContext {
  req: IncomingMessage;
  requestId: string;
}

export type Yoga = YogaServerInstance<ServerContext, Context>;

export interface GraphQLOptions {
  deps: Deps;
  sessionWatch: SessionWatch;
  /** GraphiQL's bundle, loaded on first use (never in production). */
  graphiql: () => Promise<GraphiQLAssets>;
}

export function createGraphQL({ deps, sessionWatch, graphiql }: GraphQLOptions): Yoga {
  const { config, logger, auth, applications } = deps;
  const production = config.env === 'production';

  const createContext = async (
    server: ServerContext,
    authorization: string | null | undefined,
  ): Promise<Context> => {
    // Throws UNAUTHENTICATED for a token that is not, or no longer, valid.
    const viewer = await auth.authenticate(authorization);
    return {
      deps,
      viewer,
      application: await applications.authenticate(server.req.headers['x-master-key']),
      requestId: server.requestId,
      ip: clientAddress(server.req, config.trustedProxies),
      userAgent: server.req.headers['user-agent'] ?? null,
      logger: logger.child({ requestId: server.requestId }),
      scoped: scopedRunner(deps.db.requestPrisma, {
        userId: viewer?.userId ?? null,
        role: viewer?.role ?? null,
        clinicId: viewer?.clinicId ?? null,
      }),
    };
  };

  /**
   * Yoga logs the errors it masks. A GraphQLError's text (String(error)) quotes the operation's
   * source around the error, arguments written inline included (a password): errors are logged
   * by type, message and stack only (logger.ts), never stringified; variables are never logged.
   */
  const yogaLog = (level: 'debug' | 'info' | 'warn' | 'error', args: unknown[]) => {
    const error = args.find((arg): arg is Error => arg instanceof Error);
    const text = args
      .filter((arg) => !(arg instanceof Error) && typeof arg !== 'object')
      .map(String)
      .join(' ');
    logger[level]({ source: 'yoga', ...(error ? { err: error } : {}) }, text || error?.message || 'yoga');
  };

  const plugins: Plugin[] = [
    // Limits are enforced but never described to clients ("exposeLimits: false").
    EnvelopArmorPlugin({
      maxDepth: { n: 10, exposeLimits: false, flattenFragments: true },
      costLimit: { maxCost: 5000, exposeLimits: false },
      maxAliases: { n: 15, exposeLimits: false },
      maxTokens: { n: 3000, exposeLimits: false },
      maxDirectives: { n: 30, exposeLimits: false },
      blockFieldSuggestion: { enabled: true },
    }) as Plugin,
    useCSRFPrevention({ requestHeaders: ['x-graphql-yoga-csrf', 'graphql-require-preflight'] }),
    useOperationMetrics(deps.metrics),
    useSessionBoundSubscriptions(sessionWatch),
  ];
  // At validation, which both transports run (yoga's useDisableIntrospection marks HTTP requests
  // only, so over WebSocket it let the whole schema out): no __schema, no __type; __typename stays.
  if (production)
    plugins.push({
      onValidate: ({ addValidationRule }) => addValidationRule(NoSchemaIntrospectionCustomRule),
    });

  return createYoga<ServerContext, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    healthCheckEndpoint: '/__yoga_health', // ours are /healthz and /readyz
    landingPage: false,
    graphiql: production
      ? false
      : { title: 'Onramp GraphiQL', subscriptionsProtocol: 'WS', defaultTabs: GRAPHIQL_EXAMPLE_TABS },
    renderGraphiQL: production ? undefined : async (opts) => (await graphiql()).render(opts),
    context: (initial) => {
      const { req, requestId } = initial as unknown as ServerContext;
      // Over WebSocket the token travels in connectionParams (see graphql-ws.ts).
      const wsAuthorization = (initial as { connectionParams?: { authorization?: unknown } }).connectionParams
        ?.authorization;
      return createContext(
        { req, requestId },
        typeof wsAuthorization === 'string' ? wsAuthorization : req.headers.authorization,
      );
    },
    cors: (request) =>
      isAllowedOrigin(request.headers.get('origin'), request.headers.get('host') ?? undefined, config)
        ? {
            origin: request.headers.get('origin') ?? undefined,
            methods: ['GET', 'POST'],
            allowedHeaders: [
              'content-type',
              'authorization',
              'x-master-key',
              'idempotency-key',
              'x-graphql-yoga-csrf',
            ],
            credentials: false,
            maxAge: 600,
          }
        : false,
    maskedErrors: {
      maskError(error, message) {
        // Checked by name: graphql's CJS and ESM builds can both be loaded, breaking instanceof.
        const original = isGraphQLError(error) ? error.originalError : error;
        if (isGraphQLError(error) && (!original || isGraphQLError(original))) return error;
        const expected = isGraphQLError(error) ? expectedFailureError(error, original) : undefined;
        if (expected) return expected;
        logger.error({ err: original }, 'unexpected error in a GraphQL operation');
        return new GraphQLError(message, { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
      },
    },
    logging: {
      debug: (...args) => yogaLog('debug', args),
      info: (...args) => yogaLog('info', args),
      warn: (...args) => yogaLog('warn', args),
      error: (...args) => yogaLog('error', args),
    },
    plugins,
  });
}
