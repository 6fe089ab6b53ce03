/**
 * Test helpers of the onboarding module: an app whose pino output is captured, and a small
 * REST client speaking the onboarding REST API (README, "Onboarding service").
 */
import { Writable } from 'node:stream';
import { afterFile, createTestDatabase, type TestApp, testConfig } from '../../../test/harness.js';
import { buildApp } from '../../app.js';
import { openDatabases } from '../../db/database.js';
import { createLogger } from '../../logger.js';

export interface CapturingApp extends Pick<TestApp, 'app' | 'url' | 'config' | 'superAdmin'> {
  /** Every log line written so far (JSON, level debug and up). */
  logs(): string;
}

export async function startCapturingApp(env: Record<string, string> = {}): Promise<CapturingApp> {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig({
    DATABASE_URL: await createTestDatabase(),
    LOG_LEVEL: 'debug',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    DNS_PORT: '0',
    ...env,
  });
  const logger = createLogger(config, sink);
  const db = await openDatabases(config, logger);
  const app = await buildApp(
    { config, logger, db, startedAt: new Date() },
    { drainTimeoutMs: 2_000, jobPollIntervalMs: 100 },
  );
  const url = await app.start();
  afterFile(() => app.stop());
  return {
    app,
    url,
    config,
    logs: () => lines.join(''),
    async superAdmin() {
      const admin = await app.deps.db.prisma.user.findUniqueOrThrow({ where: { email: config.adminEmail } });
      const session = await app.deps.auth.startSession(admin.id, { ip: '127.0.0.1' }, 'test');
      return { authorization: `Bearer ${session.accessToken}` };
    },
  };
}

export interface RestResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers are checked field by field
  body: any;
  headers: Headers;
}

export function restClient(baseUrl: string) {
  return async function rest(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    options: { key?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
  ): Promise<RestResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers['X-Master-Key'] = options.key;
    if (options.body !== undefined || options.raw !== undefined)
      headers['Content-Type'] ??= 'application/json';
    const response = await fetch(`${baseUrl}${path}`, {
      method,
      headers,
      body: options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body)),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
  };
}

export async function gql(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are checked field by field
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: await response.json() };
}
