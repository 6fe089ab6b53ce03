/**
 * An operation that fails unexpectedly is logged without its source or variables: a password
 * written inline or passed as a variable never reaches a log line, pretty (development) or JSON
 * (production).
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { afterFile, createTestDatabase, testConfig } from '../test/harness.js';
import { buildApp } from './app.js';
import { openDatabases } from './db/database.js';
import { createLogger } from './logger.js';

async function appLoggingToMemory(env: 'development' | 'production') {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const config = testConfig({
    DATABASE_URL: await createTestDatabase('logs'),
    ONRAMP_ENV: env,
    LOG_LEVEL: 'debug',
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    // Production refuses to start without real transports; nothing is sent here.
    ...(env === 'production'
      ? { SMTP_URL: 'smtp://127.0.0.1:9', SMS_GATEWAY_URL: 'http://127.0.0.1:9/sms' }
      : {}),
  });
  const logger = createLogger(config, sink);
  const db = await openDatabases(config, logger);
  const app = await buildApp(
    { config, logger, db, startedAt: new Date() },
    { drainTimeoutMs: 2_000, jobPollIntervalMs: 100, dnsPort: false },
  );
  const url = await app.start();
  afterFile(() => app.stop());
  // Every sign-in attempt is counted in this table first: without it, sign-in fails unexpectedly.
  await db.prisma.$executeRawUnsafe('DROP TABLE rate_limits');
  const post = async (query: string, variables?: Record<string, unknown>) =>
    (await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query, variables }),
    }).then((response) => response.json())) as { errors?: { extensions?: { code?: string } }[] };
  return { lines, post };
}

describe.each(['development', 'production'] as const)('GraphQL error logs in %s', async (env) => {
  const { lines, post } = await appLoggingToMemory(env);

  it('log the failure, never the operation source nor its variables', async () => {
    const inline = await post(
      'mutation { signInWithPassword(email: "log-probe@example.com", password: "inline-secret-Zq81") { __typename } }',
    );
    expect(inline.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
    const variables = await post(
      'mutation ($e: String!, $p: String!) { signInWithPassword(email: $e, password: $p) { __typename } }',
      { e: 'log-probe@example.com', p: 'variable-secret-Kx42' },
    );
    expect(variables.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');

    const output = lines.join('');
    expect(output).toContain('unexpected error in a GraphQL operation');
    expect(output).toContain('rate_limits');
    for (const secret of [
      'inline-secret-Zq81',
      'variable-secret-Kx42',
      'signInWithPassword(',
      '$p: String',
    ]) {
      expect(output).not.toContain(secret);
    }
    if (env === 'production') for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
  });
});
