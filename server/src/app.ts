/**
 * buildApp(): one HTTP server carrying GraphQL over HTTP (graphql-yoga), GraphQL over WebSocket
 * (graphql-ws, same path), health and metrics endpoints and the built console.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { type ExecutionArgs, GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { Redis } from 'ioredis';
import { WebSocketServer } from 'ws';
import type { BaseDeps, Context, Deps } from './context.js';
import { REPO_ROOT } from './db/paths.js';
import { scopedRunner } from './db/request-scope.js';
import { expectedFailureError } from './errors.js';
import { handleAdminRoute } from './http/admin-routes.js';
import { clientAddress } from './http/client-address.js';
import { GRAPHIQL_ASSETS_PATH, type GraphiQLAssets, loadGraphiQLAssets } from './http/graphiql.js';
import { GRAPHIQL_EXAMPLE_TABS } from './http/graphiql-examples.js';
import { isServedHost } from './http/hosts.js';
import { preferredLanguage, say } from './http/language.js';
import { bodyTooLarge, isAllowedOrigin, sendJson, setSecurityHeaders } from './http/security.js';
import { serveConsole, serveConsolePage } from './http/static.js';
import { startWorker, type Worker } from './jobs/index.js';
import { createMetrics, mayScrapeMetrics, useOperationMetrics } from './metrics.js';
import { AccountService } from './modules/account/service.js';
import { postgresLimitStore, redisLimitStore } from './modules/auth/lockout.js';
import { registerHashingMetrics } from './modules/auth/passwords.js';
import { AuthService } from './modules/auth/service.js';
import { SessionCache } from './modules/auth/session-cache.js';
import { SessionWatch, useSessionBoundSubscriptions } from './modules/auth/session-watch.js';
import { createCertificateIssuer } from './modules/certificates/service.js';
import { createDnsProvider, createDnsServer, type DnsLimits } from './modules/dns/service.js';
import { checkHealth } from './modules/health/service.js';
import { createMailTransport, deliverMail, type MailTransport } from './modules/mail/service.js';
import { MembersService } from './modules/members/service.js';
import { ApplicationService } from './modules/onboarding/applications.js';
import { IdempotencyStore } from './modules/onboarding/idempotency.js';
import { OnboardingLimits, postgresCounterStore, redisCounterStore } from './modules/onboarding/limits.js';
import { handleOnboardingRoute } from './modules/onboarding/routes.js';
import { OnboardingService } from './modules/onboarding/service.js';
import { ProvisioningService } from './modules/provisioning/service.js';
import { Reconciler } from './modules/registration/reconciler.js';
import { RegistrationService } from './modules/registration/service.js';
import { createSmsGateway } from './modules/sms/gateway.js';
import { createEventBus } from './pubsub/index.js';
import { schema } from './schema.js';

export interface App {
  deps: Deps;
  /** Listens on config.host:config.port (0 picks a free port); resolves with the base URL. */
  start(): Promise<string>;
  /** Port of the built-in DNS server (UDP and TCP) once started; undefined when it does not run. */
  readonly dnsPort: number | undefined;
  /** Stops accepting, lets in-flight requests finish, closes sockets, then the databases. */
  stop(): Promise<void>;
}

export interface BuildAppOptions {
  /** Milliseconds in-flight requests get to finish on stop. @default 10000 */
  drainTimeoutMs?: number;
  /** Built console to serve at `/`. @default console/dist */
  consoleDir?: string;
  /** How often the job worker polls besides LISTEN. @default 2000 */
  jobPollIntervalMs?: number;
  /**
   * Where mail goes instead of the configured transport (benchmarks observe delivery with it).
   * @default SMTP_URL's transport, or the dev mailbox
   */
  mailTransport?: MailTransport;
  /**
   * Port of the built-in DNS server, instead of config.dnsPort: 0 here picks a free port (tests
   * running in parallel), false disables it. @default config.dnsPort (0 there disables)
   */
  dnsPort?: number | false;
  /** Limits of the built-in DNS server (tests make them small). @default see DnsLimits */
  dnsLimits?: DnsLimits;
}

/** What the node adapter and the WebSocket server hand to yoga's context factory. */
interface ServerContext {
  req: IncomingMessage;
  requestId: string;
}

/** The console `pnpm build` makes, served unless ONRAMP_CONSOLE_DIR or `consoleDir` says otherwise. */
export const CONSOLE_DIST = resolve(REPO_ROOT, 'console/dist');

const MISDIRECTED = {
  success: false,
  error: 'unknown_host',
  message: 'This server does not answer to that host name; see ALLOWED_HOSTS',
};

export async function buildApp(base: BaseDeps, options: BuildAppOptions = {}): Promise<App> {
  const { config, logger } = base;
  const production = config.env === 'production';
  const metrics = createMetrics();
  registerHashingMetrics(metrics.registry);
  const events = await createEventBus({ config, connectionString: base.db.centralUrl, logger });
  // Losing an event must never fail the operation that emitted it.
  const safely = (topic: string, send: () => void) => {
    try {
      send();
    } catch (error) {
      logger.warn({ err: error, topic }, 'event not published');
    }
  };
  const dns = createDnsProvider(config, base.db.prisma, logger);
  const certificates = createCertificateIssuer(config, base.db.prisma, dns, logger);
  const dnsServer = createDnsServer(config, dns, logger, {
    port: options.dnsPort ?? (config.dnsPort === 0 ? false : config.dnsPort),
    centralUrl: base.db.centralUrl,
    limits: options.dnsLimits,
  });
  const provisioning = new ProvisioningService({
    ...base,
    dns,
    certificates,
    metrics,
    publishProgress: (event) => safely('provisioning', () => events.pubsub.publish('provisioning', event)),
    publishHealth: (health) =>
      safely('clinicHealth', () =>
        events.pubsub.publish('clinicHealth', { ...health, lastCheck: health.lastCheck.toISOString() }),
      ),
  });
  // Lockouts and send limits: Redis when configured (several instances), else the central database.
  const limitsRedis = config.redisUrl
    ? new Redis(config.redisUrl, { connectionName: 'onramp-limits', lazyConnect: true })
    : undefined;
  limitsRedis?.on('error', (error) => logger.warn({ err: error }, 'rate-limit Redis connection error'));
  await limitsRedis?.connect();
  const limits = limitsRedis ? redisLimitStore(limitsRedis) : postgresLimitStore(base.db.prisma);
  // Request counters (onboarding, registration and invitation limits): the same backend.
  const counters = limitsRedis ? redisCounterStore(limitsRedis) : postgresCounterStore(base.db.prisma);
  const registration = new RegistrationService({
    ...base,
    prisma: base.db.prisma,
    provisioning,
    dns,
    certificates,
    counters,
  });
  const mail = options.mailTransport ?? createMailTransport(config, logger);
  const reconciler = new Reconciler({ prisma: base.db.prisma, logger, provisioning });
  // Sessions that end tell every instance: cached session checks are dropped (here at once),
  // live subscriptions of them end.
  const sessionCache = new SessionCache(events);
  const sessionsEnded = (userId: string) => {
    sessionCache.ended(userId);
    safely('sessions', () => events.pubsub.publish('sessions', { userId }));
  };
  const auth = new AuthService({
    ...base,
    prisma: base.db.prisma,
    provisioning,
    limits,
    mail,
    sessionsEnded,
    sessionCache,
  });
  await auth.bootstrapSuperAdmin();
  const sessionWatch = new SessionWatch({ auth, events, logger, registry: metrics.registry });
  const account = new AccountService({ prisma: base.db.prisma, provisioning, sessionsEnded });
  const sms = createSmsGateway(config, logger);
  const members = new MembersService({
    ...base,
    prisma: base.db.prisma,
    sms,
    mail,
    counters,
    sessionsEnded,
  });
  // Onboarding service: its rate limits share the lockouts' backend (Redis or PostgreSQL).
  const applications = new ApplicationService(base.db.prisma);
  const onboarding = new OnboardingService({
    config,
    logger,
    prisma: base.db.prisma,
    limits: OnboardingLimits.fromConfig(counters, config),
    provisioning,
  });
  const deps: Deps = {
    ...base,
    metrics,
    events,
    provisioning,
    registration,
    mail,
    reconciler,
    auth,
    account,
    sms,
    members,
    dns,
    certificates,
    applications,
    onboarding,
    idempotency: new IdempotencyStore(base.db.prisma),
  };
  let worker: Worker | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  const reconcile = () =>
    Promise.all([reconciler.reconcile(), auth.codes.prune(), registration.expireUnverified()])
      .then(([result, , expired]) => {
        if (Object.values(result).some((count) => count > 0) || expired > 0)
          logger.info({ result, expiredRegistrations: expired }, 'reconciled provisioning');
      })
      .catch((error: unknown) => logger.error({ err: error }, 'reconciliation failed'));
  const consoleDir = options.consoleDir ?? CONSOLE_DIST;
  let stopping = false;

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
      scoped: scopedRunner(base.db.requestPrisma, {
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
    useOperationMetrics(metrics),
    useSessionBoundSubscriptions(sessionWatch),
  ];
  if (production) plugins.push(useDisableIntrospection());

  // Loaded on first use: tests and production never pay for the bundle.
  let graphiqlAssets: Promise<GraphiQLAssets> | undefined;
  const graphiql = () => {
    graphiqlAssets ??= loadGraphiQLAssets();
    return graphiqlAssets;
  };

  const yoga: YogaServerInstance<ServerContext, Context> = createYoga<ServerContext, Context>({
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
      // Over WebSocket the token travels in connectionParams (see onSubscribe).
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

  let inFlight = 0;
  let drained: (() => void) | undefined;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = validRequestId(req.headers['x-request-id']) ?? randomUUID();
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    res.setHeader('X-Request-Id', requestId);
    setSecurityHeaders(res, pathname, config);

    if (pathname === '/healthz') return sendJson(res, 200, { status: 'ok' });
    // Probes reach instances by address and learn nothing from these two; everything else
    // answers only under a name Onramp serves (DNS rebinding, http/hosts.ts).
    if (pathname !== '/readyz' && !isServedHost(req.headers.host, config)) {
      return sendJson(res, 421, MISDIRECTED);
    }
    if (pathname === '/readyz') {
      if (stopping) return sendJson(res, 503, { status: 'stopping' });
      const health = await checkHealth(deps);
      return sendJson(res, health.status === 'OK' ? 200 : 503, {
        status: health.status.toLowerCase(),
        checks: health.checks,
        // Detail, not readiness: a clinic server down leaves the rest of Onramp serving.
        unreachableClinicServers: [...deps.db.servers.unreachable.values()].map(({ name, reason }) => ({
          name,
          reason,
        })),
      });
    }
    if (pathname === '/metrics') {
      if (!mayScrapeMetrics(req.headers.authorization, config)) {
        const message = config.metricsToken
          ? 'Send the metrics token as Authorization: Bearer …'
          : 'Set METRICS_TOKEN to read metrics in production';
        return sendJson(res, 401, { error: 'unauthenticated', message }, { 'WWW-Authenticate': 'Bearer' });
      }
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' });
      res.end(await metrics.registry.metrics());
      return;
    }
    if (!production && pathname.startsWith(GRAPHIQL_ASSETS_PATH)) {
      if (await (await graphiql()).serve(pathname, req, res)) return;
      return sendJson(res, 404, { error: 'Not found' });
    }
    if (pathname === '/graphql' || pathname === '/__yoga_health') {
      if (bodyTooLarge(req, res)) return;
      await yoga(req, res, { req, requestId });
      return;
    }
    if (pathname.startsWith('/api/')) {
      if (bodyTooLarge(req, res)) return;
      if (await handleOnboardingRoute(deps, pathname, req, res)) return;
      if (await handleAdminRoute(deps, pathname, req, res)) return;
      const { message, language } = say(
        {
          en: `No route ${req.method} ${pathname}; the reference is at /api/v1/docs`,
          fr: `Aucune route ${req.method} ${pathname} ; la référence est sur /api/v1/docs`,
        },
        preferredLanguage(req),
      );
      return sendJson(
        res,
        404,
        { success: false, error: 'not_found', message },
        { 'Content-Language': language },
      );
    }
    if (pathname === '/verify-email' && (req.method === 'GET' || req.method === 'HEAD')) {
      // The console's page verifies on a button press, never on this GET: mail scanners fetch
      // links to inspect them, and must not spend the token (README, "Console").
      if (serveConsolePage(consoleDir, req, res)) return;
      return sendJson(res, 503, {
        error: 'console_unavailable',
        message: 'The console is not built; run pnpm build, then open this link again.',
      });
    }
    if (serveConsole(consoleDir, pathname, req, res)) return;
    sendJson(res, 404, { error: 'Not found' });
  }

  const server = createServer((req, res) => {
    inFlight += 1;
    res.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    handle(req, res).catch((error: unknown) => {
      // The path only: a GET /graphql carries its query and variables in the query string.
      logger.error(
        { err: error, path: new URL(req.url ?? '/', 'http://localhost').pathname },
        'request failed',
      );
      if (!res.headersSent) sendJson(res, 500, { error: 'Internal error' });
      else res.destroy();
    });
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 15_000;

  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024 });
  server.on('upgrade', (req, socket, head) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (!isServedHost(req.headers.host, config)) {
      socket.end('HTTP/1.1 421 Misdirected Request\r\nConnection: close\r\n\r\n');
      return;
    }
    if (
      stopping ||
      pathname !== '/graphql' ||
      !isAllowedOrigin(req.headers.origin, req.headers.host, config)
    ) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  interface EnvelopedRoot {
    execute: (args: ExecutionArgs) => unknown;
    subscribe: (args: ExecutionArgs) => unknown;
  }
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

  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
  let stopped: Promise<void> | undefined;

  return {
    deps,
    get dnsPort() {
      return dnsServer?.port;
    },
    start: async () => {
      if (dnsServer) {
        const dnsPort = await dnsServer.listen();
        logger.info({ port: dnsPort, zone: config.baseDomain }, 'built-in DNS server listening');
      }
      return new Promise((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const { port } = server.address() as AddressInfo;
          const host = config.host.includes(':') ? `[${config.host}]` : config.host;
          const url = `http://${host}:${port}`;
          logger.info({ url, graphiql: !production }, 'Onramp listening');
          provisioning.start();
          startWorker({
            connectionString: base.db.centralUrl,
            logger,
            pollInterval: options.jobPollIntervalMs,
            handlers: {
              send_email: ({ outboxId }) =>
                deliverMail(
                  { prisma: base.db.prisma, transport: mail, logger, key: config.encryptionKey },
                  outboxId,
                ),
              provision_clinic: ({ clinicId, attempt }) =>
                registration.continueRegistration(clinicId, attempt),
            },
          }).then((started) => {
            worker = started;
            // Runs abandoned by a crash (expired leases) and orphans: now, then every lease period.
            void reconcile();
            reconcileTimer = setInterval(reconcile, config.provisioningLeaseSeconds * 1000);
            reconcileTimer.unref();
            resolvePromise(url);
          }, reject);
        });
      });
    },
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        const closed = new Promise<void>((done) => server.close(() => done()));
        server.closeIdleConnections();
        for (const client of wss.clients) client.close(1001, 'Server shutting down');
        await wsServer.dispose();
        if (inFlight > 0) {
          await Promise.race([
            new Promise<void>((done) => {
              drained = done;
            }),
            new Promise((done) => setTimeout(done, drainTimeoutMs).unref()),
          ]);
        }
        server.closeAllConnections();
        await closed;
        await dnsServer?.close();
        await new Promise<void>((done) => wss.close(() => done()));
        await yoga.dispose();
        clearInterval(reconcileTimer);
        await auth.codes.idle();
        await registration.idle();
        await worker?.stop();
        mail.close();
        await provisioning.close();
        await sessionWatch.close();
        await sessionCache.close();
        await events.close();
        limitsRedis?.disconnect();
        await deps.db.close();
        logger.info('Onramp stopped');
      })();
      return stopped;
    },
  };
}

/** A thrown parse or validation failure as an error of graphql-ws' own GraphQLError class. */
function asOperationError(error: unknown): GraphQLError {
  if (error instanceof GraphQLError) return error;
  return new GraphQLError(isGraphQLError(error) ? error.message : 'Invalid operation', {
    extensions: isGraphQLError(error) ? error.extensions : undefined,
  });
}

function isGraphQLError(error: unknown): error is GraphQLError {
  return error instanceof Error && error.name === 'GraphQLError';
}

function validRequestId(header: string | string[] | undefined): string | undefined {
  return typeof header === 'string' && /^[A-Za-z0-9._-]{8,64}$/.test(header) ? header : undefined;
}
