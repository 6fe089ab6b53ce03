/**
 * buildApp(): one HTTP server carrying GraphQL over HTTP (graphql-yoga), GraphQL over WebSocket
 * (graphql-ws, same path), health and metrics endpoints, the REST routes and the built console.
 * It composes what the other files build: the services (wiring.ts), GraphQL (http/graphql.ts),
 * the route table (http/routes.ts) and the WebSocket glue (http/graphql-ws.ts); here only the
 * listener's lifecycle lives (start, drain, stop).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { BaseDeps, Deps } from './context.js';
import { REPO_ROOT } from './db/paths.js';
import { type GraphiQLAssets, loadGraphiQLAssets } from './http/graphiql.js';
import { createGraphQL } from './http/graphql.js';
import { attachGraphQLWebSocket } from './http/graphql-ws.js';
import { routeRequest, routeTable } from './http/routes.js';
import { sendJson } from './http/security.js';
import type { DnsLimits } from './modules/dns/service.js';
import type { MailTransport } from './modules/mail/service.js';
import type { RolloutTuning } from './modules/rollouts/service.js';
import { wireServices } from './wiring.js';

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
   * The job worker's recurring jobs, in graphile-worker's crontab format: '' runs none (a test
   * that counts every job added in its database). @default CRONTAB (jobs/index.ts)
   */
  jobCrontab?: string;
  /**
   * Where mail goes instead of the configured transport (benchmarks observe delivery with it).
   * @default SMTP_URL's transport, or the dev mailbox
   */
  mailTransport?: MailTransport;
  /**
   * How long a staged mail is left to the process that committed it before the sweep gives it a
   * job (tests make it short). @default MAIL_SEND_GRACE_MS (mail/after-commit.ts)
   */
  mailSendGraceMs?: number;
  /**
   * Port of the built-in DNS server, instead of config.dnsPort: 0 here picks a free port (tests
   * running in parallel), false disables it. @default config.dnsPort (0 there disables)
   */
  dnsPort?: number | false;
  /** Limits of the built-in DNS server (tests make them small). @default see DnsLimits */
  dnsLimits?: DnsLimits;
  /** Timings of clinic rollouts (tests make them short). @default see RolloutTuning */
  rolloutTuning?: Partial<RolloutTuning>;
}

/** The console `pnpm build` makes, served unless ONRAMP_CONSOLE_DIR or `consoleDir` says otherwise. */
export const CONSOLE_DIST = resolve(REPO_ROOT, 'console/dist');

export async function buildApp(base: BaseDeps, options: BuildAppOptions = {}): Promise<App> {
  const { config, logger } = base;
  const production = config.env === 'production';
  const services = await wireServices(base, options);
  const { deps } = services;
  let stopping = false;

  // Loaded on first use: tests and production never pay for the bundle.
  let graphiqlAssets: Promise<GraphiQLAssets> | undefined;
  const graphiql = () => {
    graphiqlAssets ??= loadGraphiQLAssets();
    return graphiqlAssets;
  };
  const yoga = createGraphQL({ deps, sessionWatch: services.sessionWatch, graphiql });
  const routes = routeTable({
    deps,
    yoga,
    graphiql,
    consoleDir: options.consoleDir ?? CONSOLE_DIST,
    stopping: () => stopping,
  });

  let inFlight = 0;
  let drained: (() => void) | undefined;
  const server = createServer((req, res) => {
    inFlight += 1;
    res.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) drained?.();
    });
    routeRequest(routes, config, req, res).catch((error: unknown) => {
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
  const webSocket = attachGraphQLWebSocket(server, yoga, config, () => stopping);

  const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
  let stopped: Promise<void> | undefined;

  return {
    deps,
    get dnsPort() {
      return services.dnsPort;
    },
    start: async () => {
      await services.listenDns();
      const url = await new Promise<string>((resolvePromise, reject) => {
        server.once('error', reject);
        server.listen(config.port, config.host, () => {
          server.off('error', reject);
          const { port } = server.address() as AddressInfo;
          const host = config.host.includes(':') ? `[${config.host}]` : config.host;
          resolvePromise(`http://${host}:${port}`);
        });
      });
      logger.info({ url, graphiql: !production }, 'Onramp listening');
      await services.startBackground();
      return url;
    },
    stop: () => {
      stopped ??= (async () => {
        stopping = true;
        const closed = new Promise<void>((done) => server.close(() => done()));
        server.closeIdleConnections();
        await webSocket.closeSockets();
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
        await webSocket.close();
        await yoga.dispose();
        await services.close();
        logger.info('Onramp stopped');
      })();
      return stopped;
    },
  };
}
