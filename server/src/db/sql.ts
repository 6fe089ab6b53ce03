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
 * How `withClient` finds out that its server's host vanished mid-session (docs/decisions/097).
 * A statement's length says nothing (a big clinic's migration may run for many minutes), so the
 * bound is on the server's silence instead: once a session has run `afterMs`, a second, short
 * connection asks the server every `everyMs` whether the session's backend is still there. Each
 * probe waits `answerMs` for its connect and its answer; `misses` probes in a row without any
 * answer (no connect, no reply: not a refusal or an error, which a live host sends) end the
 * session, and so does an answer that its backend is gone. A live server, however busy, answers:
 * a legitimate statement never hits this bound. A vanished host ends the session within about
 * `misses × (everyMs + answerMs)` (20 s), or `afterMs + misses × answerMs + (misses - 1) × everyMs`
 * for a session younger than `afterMs` (also 20 s). A session shorter than `afterMs` (nearly all
 * of them) is never probed.
 */
export interface Liveness {
  afterMs: number;
  everyMs: number;
  answerMs: number;
  misses: number;
}
export const LIVENESS: Readonly<Liveness> = { afterMs: 5_000, everyMs: 5_000, answerMs: 5_000, misses: 2 };

/** A one-off session abandoned because its server stopped answering (docs/decisions/097). */
export class SessionLostError extends Error {
  constructor(address: string, why: string, options?: ErrorOptions) {
    super(`the session with ${address} was abandoned: ${why}`, options);
    this.name = 'SessionLostError';
  }
}

export interface OneOffOptions {
  /**
   * Runs on the session as soon as it is open, before `work`: e.g. the check that it reached the
   * cluster it was meant for (db/servers.ts, `withServerClient`). Its failure ends the session.
   */
  check?: (client: pg.Client) => Promise<void>;
  /** The liveness probes' timing; tests shorten it. @default LIVENESS */
  liveness?: Readonly<Liveness>;
}

function hostOf(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname || parsed.searchParams.get('host') || 'localhost'}:${parsed.port || '5432'}`;
}

/**
 * Whether the server at `url` says backend `pid` is still there: true or false when it answers
 * (an error is an answer too: the host is alive, and TCP will tell the session its fate), null
 * when nothing answered within `answerMs`.
 */
async function backendAlive(url: string, pid: number, answerMs: number): Promise<boolean | null> {
  const probe = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: answerMs,
    query_timeout: answerMs,
    application_name: 'onramp-probe',
  });
  probe.on('error', () => {});
  try {
    await probe.connect();
    const { rows } = await probe.query<{ alive: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1) AS alive',
      [pid],
    );
    return rows[0]?.alive ?? null;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (error instanceof pg.DatabaseError || code === 'ECONNREFUSED') return true;
    return null;
  } finally {
    void probe.end().catch(() => {});
  }
}

/**
 * Watches `client`'s session ({@link LIVENESS}) until the returned stop is called; `lose` is
 * called once, with why, when the server is found gone.
 */
function watchLiveness(
  url: string,
  client: pg.Client,
  timing: Readonly<Liveness>,
  lose: (why: string) => void,
): () => void {
  const pid = (client as unknown as { processID: number | null }).processID;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let missed = 0;
  const tick = async () => {
    if (stopped || pid === null) return;
    const alive = await backendAlive(url, pid, timing.answerMs);
    if (stopped) return;
    if (alive === false) return lose('its backend is gone from the server');
    missed = alive === null ? missed + 1 : 0;
    if (missed >= timing.misses)
      return lose(
        `the server answered none of ${missed} liveness probes (${timing.answerMs} ms each, ${timing.everyMs} ms apart)`,
      );
    timer = setTimeout(tick, timing.everyMs);
    timer.unref();
  };
  timer = setTimeout(tick, timing.afterMs);
  timer.unref();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * Runs `work` with one short-lived connection, always closed afterwards. Probed like the
 * long-lived ones ({@link probedConnection}): a one-off can be a migration or a grant that waits
 * on a lock, and its backend should not outlive a vanished host by hours (docs/decisions/095).
 * Its statements have no timeout (a one-off may be a migration of any length), but the session
 * has a liveness bound ({@link LIVENESS}): when its server stops answering, the session is
 * dropped and `work`'s failure is a {@link SessionLostError} (docs/decisions/097).
 */
export async function withClient<T>(
  url: string,
  work: (client: pg.Client) => Promise<T>,
  options: OneOffOptions = {},
): Promise<T> {
  const client = new pg.Client({
    ...probedConnection(url),
    connectionTimeoutMillis: ONE_OFF_CONNECT_TIMEOUT_MS,
    application_name: 'onramp',
  });
  // A connection dropped while idle emits 'error'; the failing query reports it instead.
  client.on('error', () => {});
  await client.connect();
  let lost: string | undefined;
  const stop = watchLiveness(url, client, options.liveness ?? LIVENESS, (why) => {
    lost = why;
    // What is waiting on the session fails now, not when the kernel gives up in some 15 minutes.
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  });
  try {
    await options.check?.(client);
    return await work(client);
  } catch (error) {
    if (lost !== undefined) throw new SessionLostError(hostOf(url), lost, { cause: error });
    throw error;
  } finally {
    stop();
    if (lost === undefined) await client.end().catch(() => {});
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
