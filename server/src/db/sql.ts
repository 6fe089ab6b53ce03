import pg from 'pg';

/** Quotes a PostgreSQL identifier; safe for any string without NUL. */
export function quoteIdent(name: string): string {
  if (name.includes('\0')) throw new Error('identifier contains NUL');
  return `"${name.replaceAll('"', '""')}"`;
}

/** The same server URL pointed at another database. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/**
 * How PostgreSQL probes a long-lived central connection (docs/decisions/092): the first probe after
 * 10 s of silence, then every 5 s, 3 unanswered ending it; and 25 s without an acknowledgement of
 * data it sent (a NOTIFY, a query's result) end it too, which keepalives alone would not (they stay
 * quiet while data is unacknowledged, and the kernel retransmits for some 15 minutes). So the
 * backends of a host that vanished without closing its connections (power loss, partition) end
 * within about 25 s instead of TCP's 2 hours and more, and with them their locks, their open
 * transactions and the liveness its job workers' connections stood for (decision 082).
 */
export const PEER_PROBES = { idleSeconds: 10, intervalSeconds: 5, count: 3, userTimeoutMs: 25_000 } as const;

/**
 * `connectionString` as a pg config whose sessions PostgreSQL probes ({@link PEER_PROBES}): the
 * server's `tcp_keepalives_*` and `tcp_user_timeout` in the startup `options` (after any the URL
 * already has, which pg would otherwise prefer to ours), and the client's own keepalive. Over a
 * Unix socket PostgreSQL ignores these settings.
 */
export function probedConnection(
  connectionString: string,
): Pick<pg.ClientConfig, 'connectionString' | 'options' | 'keepAlive' | 'keepAliveInitialDelayMillis'> {
  const url = new URL(connectionString);
  const given = url.searchParams.get('options');
  url.searchParams.delete('options');
  const probes = [
    `-c tcp_keepalives_idle=${PEER_PROBES.idleSeconds}`,
    `-c tcp_keepalives_interval=${PEER_PROBES.intervalSeconds}`,
    `-c tcp_keepalives_count=${PEER_PROBES.count}`,
    `-c tcp_user_timeout=${PEER_PROBES.userTimeoutMs}`,
  ];
  return {
    connectionString: given === null ? connectionString : url.toString(),
    options: [...probes, given].filter(Boolean).join(' '),
    keepAlive: true,
    keepAliveInitialDelayMillis: PEER_PROBES.idleSeconds * 1000,
  };
}

/** How long `withClient` waits for its connection: a vanished host answers no connect. */
export const ONE_OFF_CONNECT_TIMEOUT_MS = 10_000;

/**
 * Runs `work` with one short-lived connection, always closed afterwards. Probed like the
 * long-lived ones ({@link probedConnection}): a one-off can be a migration or a grant that waits
 * on a lock, and its backend should not outlive a vanished host by hours (docs/decisions/095).
 * Its queries have no client-side bound: a one-off may be a migration of any length.
 */
export async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    ...probedConnection(url),
    connectionTimeoutMillis: ONE_OFF_CONNECT_TIMEOUT_MS,
    application_name: 'onramp',
  });
  // A connection dropped while idle emits 'error'; the failing query reports it instead.
  client.on('error', () => {});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Runs `work` on a pooled session, released afterwards (destroyed if the work failed). */
export async function withPooled<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let failed = false;
  try {
    return await work(client);
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    // A failed session may be mid-transaction or broken: never hand it to the next caller.
    client.release(failed);
  }
}
