import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { PEER_PROBES, probedConnection, withClient } from './sql.js';

/** Liveness probes 10 times as frequent as the default, for a statement that outlasts their bound. */
const QUICK = { afterMs: 100, everyMs: 100, answerMs: 400, misses: 2 };

/** The shared test server over TCP (its URL names its Unix socket, where these settings read 0). */
function overTcp(): URL {
  const url = new URL(inject('pgAdminUrl'));
  url.searchParams.delete('host');
  return url;
}

async function settings(config: pg.ClientConfig): Promise<Record<string, string>> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings
        WHERE name IN ('tcp_keepalives_idle', 'tcp_keepalives_interval', 'tcp_keepalives_count',
                       'tcp_user_timeout', 'statement_timeout')`,
    );
    return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
  } finally {
    await client.end();
  }
}

describe('probedConnection (decision 092)', () => {
  it('has PostgreSQL probe the session', async () => {
    expect(await settings(probedConnection(overTcp().toString()))).toMatchObject({
      tcp_keepalives_idle: String(PEER_PROBES.idleSeconds),
      tcp_keepalives_interval: String(PEER_PROBES.intervalSeconds),
      tcp_keepalives_count: String(PEER_PROBES.count),
      tcp_user_timeout: String(PEER_PROBES.userTimeoutMs),
    });
    // Without it, the kernel's (on Linux, 2 hours before the first probe) and no user timeout.
    const plain = await settings({ connectionString: overTcp().toString() });
    expect(plain.tcp_user_timeout).toBe('0');
    expect(plain.tcp_keepalives_idle).not.toBe(String(PEER_PROBES.idleSeconds));
  });

  it('keeps the options a URL gives, which may tune the probes', async () => {
    const url = overTcp();
    url.searchParams.set('options', '-c statement_timeout=4321 -c tcp_keepalives_idle=7');
    expect(await settings(probedConnection(url.toString()))).toMatchObject({
      statement_timeout: '4321',
      tcp_keepalives_idle: '7',
      tcp_user_timeout: String(PEER_PROBES.userTimeoutMs),
    });
  });
});

describe('withClient (decision 095)', () => {
  it("has PostgreSQL probe its one-off session too: a vanished host's grant or migration ends in seconds", async () => {
    const found = await withClient(overTcp().toString(), async (client) => {
      const { rows } = await client.query<{ name: string; setting: string }>(
        `SELECT name, setting FROM pg_settings WHERE name IN ('tcp_keepalives_idle', 'tcp_user_timeout')`,
      );
      return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
    });
    expect(found).toEqual({
      tcp_keepalives_idle: String(PEER_PROBES.idleSeconds),
      tcp_user_timeout: String(PEER_PROBES.userTimeoutMs),
    });
  });

  it('lets a statement outlast its liveness bound while the server answers the probes (decision 097)', async () => {
    // The bound (about 1 s with these timings) is on the server's silence, not on the statement.
    const started = Date.now();
    const answer = await withClient(
      overTcp().toString(),
      async (client) => {
        await client.query('SELECT pg_sleep(2)');
        return client.query<{ n: number }>('SELECT 1 AS n');
      },
      { liveness: QUICK },
    );
    expect(answer.rows).toEqual([{ n: 1 }]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });
});
