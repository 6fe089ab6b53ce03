/**
 * Clinic database servers, known by identity (docs/decisions/040). A server's address can change
 * (a new DNS name, `localhost` instead of `127.0.0.1`, the embedded server on another port); its
 * PostgreSQL `system_identifier` does not. Each configured URL is matched to its recorded row by
 * that identifier: a moved server is re-addressed, an unknown identifier is a new server, and a
 * recorded server no URL reaches is marked unreachable — reported, never taken for empty. An
 * unknown identifier at the address of a recorded server that still has live clinics is recorded
 * _held_ (docs/decisions/090): nothing is placed on it until that server is found elsewhere or an
 * operator accepts it.
 */
import pg from 'pg';
import { redactUrl } from '../env.js';
import type { Logger } from '../logger.js';
import { type ClinicTemplate, ensureClinicTemplate } from './clinic-template.js';
import type { Migration } from './migrator.js';
import { databaseUrl, probedConnection, withClient } from './sql.js';

/** How long a clinic server's admin session may take to open (TCP, TLS, authentication). */
export const ADMIN_CONNECT_TIMEOUT_MS = 5_000;
/**
 * The client's bound on one admin statement's answer (docs/decisions/095): claims, clones of the
 * template, grants, drops take well under a second, so a statement past this is a server whose
 * host vanished (its answer lost with it, TCP retransmitting for some 15 minutes), not a slow one.
 */
export const ADMIN_QUERY_TIMEOUT_MS = 20_000;

export interface ClinicServer {
  /** Row of `database_servers`: what clinics and the ledger reference. */
  id: string;
  name: string;
  /** `host:port` it is reached at now (never credentials). */
  address: string;
  /**
   * The `system_identifier` it was matched by. What acts on a clinic's database on the strength
   * of its absence checks it first (`assertSameServer`): another cluster may answer at the same
   * address while Onramp runs (a server restarted on an empty data directory, a DNS change).
   */
  systemIdentifier: string;
  /** Admin connection URL (may create databases and roles). */
  url: string;
  template: ClinicTemplate;
  /**
   * A few warm admin sessions: opening one costs several milliseconds, more than the
   * catalog work a provisioning step does with it. Each is checked, as it opens, to be on the
   * cluster `systemIdentifier` names: a session on another one is refused (ServerIdentityError)
   * and the server is taken out of the registry (docs/decisions/086). A session cannot change
   * clusters once open, so nothing sent on one needs checking again.
   */
  admin: pg.Pool;
  /**
   * Called by what finds another cluster at the server's address (`expectSameServer`): takes the
   * server out of placement and the warm pool until it answers as itself again.
   */
  onMismatch?(found: string | undefined): void;
}

/** A recorded server that no configured URL reaches right now, and why. */
export interface UnreachableServer {
  id: string;
  name: string;
  address: string;
  reason: string;
  /**
   * Its address answers, as another server (another `system_identifier`): not an outage but a
   * disagreement, which is alerted (provisioning/alerts.ts) and never resolved by a guess.
   */
  identityMismatch: boolean;
  /**
   * Held (docs/decisions/090): a cluster first seen where a recorded server with live clinics was
   * expected. It answers, but gets no clinic, spare or template until it is released.
   */
  held: boolean;
}

export interface ServerRegistry {
  /** Reachable servers by row id; `refresh` adds the ones that come back. */
  readonly byId: Map<string, ClinicServer>;
  /** Recorded servers not reachable, by row id. */
  readonly unreachable: Map<string, UnreachableServer>;
  /** Every recorded server's name, by row id (reachable or not). */
  readonly names: Map<string, string>;
  /** Tries again the configured URLs that did not answer; cheap when all did. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

interface ServerRow {
  id: string;
  name: string;
  system_identifier: string | null;
  address: string;
  held_reason: string | null;
}

/** A server answering at `url`, held (docs/decisions/090). */
interface HeldServer {
  url: string;
  systemIdentifier: string;
}

export function serverAddress(url: string): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || '5432'}`;
}

/** PostgreSQL's identifier of its cluster, fixed at initdb and kept by every copy of its files. */
async function systemIdentifier(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string }>(
      'SELECT system_identifier::text AS id FROM pg_control_system()',
    );
    return rows[0]?.id as string;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Another cluster answers where a server was identified: nothing may be concluded from it. */
export class ServerIdentityError extends Error {
  constructor(server: Pick<ClinicServer, 'address' | 'systemIdentifier'>, found: string | undefined) {
    super(
      `${server.address} now answers as another server (system identifier ${found ?? 'unknown'}, recorded ${server.systemIdentifier})`,
    );
    this.name = 'ServerIdentityError';
  }
}

/** The identity check's select list, to ride along a query already sent (one round trip). */
export const SYSTEM_IDENTIFIER_SQL = '(SELECT system_identifier::text FROM pg_control_system())';

/**
 * @throws ServerIdentityError when `found` is not the identifier `server` was matched by (the
 * registry is told first: decision 086).
 */
export function expectSameServer(
  server: Pick<ClinicServer, 'address' | 'systemIdentifier' | 'onMismatch'>,
  found: string | undefined,
): void {
  if (found === server.systemIdentifier) return;
  server.onMismatch?.(found);
  throw new ServerIdentityError(server, found);
}

/**
 * Checks that `admin` is connected to the cluster `server` was identified as, before anything
 * is created, or settled as gone, because a database is absent there.
 * @throws ServerIdentityError
 */
export async function assertSameServer(
  admin: Pick<pg.ClientBase, 'query'>,
  server: Pick<ClinicServer, 'address' | 'systemIdentifier' | 'onMismatch'>,
): Promise<void> {
  const { rows } = await admin.query<{ id: string }>(`SELECT ${SYSTEM_IDENTIFIER_SQL} AS id`);
  expectSameServer(server, rows[0]?.id);
}

/** What a session needs to reach a server and check it is that server's cluster. */
export type IdentifiedServer = Pick<ClinicServer, 'url' | 'address' | 'systemIdentifier' | 'onMismatch'>;

/**
 * `withClient` on `server`'s cluster, in `database` (else the admin URL's own), the session
 * checked as it opens to be on the cluster `server` was identified as (docs/decisions/097), as
 * the admin pool's sessions are (086): a migration, a rollout's step or a grant must not reach a
 * restored copy or a promoted replica answering at the recorded address. One statement per
 * session, on a session that already costs several round trips to open.
 * @throws ServerIdentityError (the server is distrusted first)
 */
export function withServerClient<T>(
  server: IdentifiedServer,
  database: string | undefined,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const url = database === undefined ? server.url : databaseUrl(server.url, database);
  return withClient(url, work, { check: (client) => assertSameServer(client, server) });
}

export async function openClinicServers(options: {
  centralUrl: string;
  urls: readonly string[];
  clinicMigrations: readonly Migration[];
  logger: Logger;
}): Promise<ServerRegistry> {
  const { centralUrl, logger } = options;
  const byId = new Map<string, ClinicServer>();
  const unreachable = new Map<string, UnreachableServer>();
  const names = new Map<string, string>();
  /** Recorded servers whose address answered as another server, by row id. */
  const mismatched = new Set<string>();
  /**
   * Servers taken out while Onramp runs because their address answered as another cluster, by
   * row id: `refresh` takes one back only when its address answers with its identifier again,
   * and never records what answers there meanwhile as a new server (its clinics' names would
   * then be created on a cluster that is lost when the real one returns).
   */
  const distrusted = new Map<string, ClinicServer>();
  /**
   * Held servers this instance found answering, by row id (docs/decisions/090): `refresh` asks
   * their URL again, and attaches it once the central row is released or another cluster (the
   * recorded one, back) answers there.
   */
  const held = new Map<string, HeldServer>();
  let pending = [...options.urls];
  let refreshing: Promise<void> | undefined;

  /**
   * Another cluster answers at `server`'s address: out of `byId` at once (placement, the warm
   * pool and every step look there), listed unreachable with `identityMismatch` (alerted,
   * provisioning/alerts.ts), and recorded in `database_servers` for the other instances' reports.
   * Each instance finds out by itself, on its first new session there: no session of its own can
   * reach the other cluster unchecked.
   */
  const distrust = async (server: ClinicServer, found: string | undefined): Promise<void> => {
    if (byId.get(server.id) !== server) return;
    byId.delete(server.id);
    distrusted.set(server.id, server);
    mismatched.add(server.id);
    const reason = new ServerIdentityError(server, found).message;
    unreachable.set(server.id, {
      id: server.id,
      name: server.name,
      address: server.address,
      reason,
      identityMismatch: true,
      held: false,
    });
    logger.error(
      { server: server.name, recorded: server.systemIdentifier, found },
      'clinic database server address answers as another server; nothing is placed there until it answers as itself',
    );
    await withClient(centralUrl, (client) =>
      client.query(
        `UPDATE database_servers SET reachable = false, last_error = $2, updated_at = now()
          WHERE id = $1 AND system_identifier = $3`,
        [server.id, reason.slice(0, 500), server.systemIdentifier],
      ),
    ).catch((error: unknown) =>
      logger.warn({ err: error, server: server.name }, 'server mismatch not recorded'),
    );
  };

  /** Matches the URLs that answer to their rows (in one central transaction) and opens them. */
  const attach = async (urls: readonly string[]): Promise<string[]> => {
    const answered: { url: string; identifier: string }[] = [];
    const down: { url: string; error: string }[] = [];
    for (const url of urls) {
      try {
        answered.push({ url, identifier: await systemIdentifier(url) });
      } catch (error) {
        down.push({ url, error: error instanceof Error ? error.message : String(error) });
      }
    }
    const matched = await withClient(centralUrl, async (client) => {
      await client.query('BEGIN');
      try {
        // Instances starting together must not record one server twice.
        await client.query("SELECT pg_advisory_xact_lock(hashtext('onramp:database_servers'))");
        // A distrusted server is `refresh`'s to take back (it passes its URL only then): not
        // marked again here by a refresh of other URLs.
        const open = new Set(byId.keys());
        for (const server of distrusted.values()) if (!urls.includes(server.url)) open.add(server.id);
        for (const [id, server] of held) if (!urls.includes(server.url)) open.add(id);
        const result = await matchServers(client, answered, down, open, new Set(byId.keys()), logger);
        await client.query('COMMIT');
        for (const id of result.mismatched) mismatched.add(id);
        for (const { row } of result.matched) mismatched.delete(row.id);
        for (const [id, server] of held) if (urls.includes(server.url)) held.delete(id);
        for (const { row, url } of result.held)
          held.set(row.id, { url, systemIdentifier: row.system_identifier as string });
        return result.matched;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        throw error;
      }
    });
    for (const { row, url } of matched) {
      const template = await ensureClinicTemplate(url, options.clinicMigrations, logger);
      const identifier = row.system_identifier as string;
      const admin = new pg.Pool({
        // Probed by PostgreSQL (decision 092): a vanished host's open work here ends in ~25 s.
        ...probedConnection(url),
        max: 4,
        idleTimeoutMillis: 30_000,
        // And bounded by the client (decision 095): a host that vanished answers neither a
        // connect nor a query, and the kernel would wait minutes for each.
        connectionTimeoutMillis: ADMIN_CONNECT_TIMEOUT_MS,
        query_timeout: ADMIN_QUERY_TIMEOUT_MS,
        application_name: 'onramp-admin',
        // Once per session, not per use: sessions are kept warm, so a registration pays nothing.
        onConnect: async (client) => {
          const { rows } = await client.query<{ id: string }>(`SELECT ${SYSTEM_IDENTIFIER_SQL} AS id`);
          const found = rows[0]?.id;
          if (found === identifier) return;
          await distrust(server, found);
          throw new ServerIdentityError(server, found);
        },
      });
      admin.on('error', (error) =>
        logger.warn({ err: error, server: row.name }, 'idle admin connection lost'),
      );
      const server: ClinicServer = {
        id: row.id,
        name: row.name,
        address: serverAddress(url),
        url,
        systemIdentifier: identifier,
        template,
        admin,
        onMismatch: (found) => void distrust(server, found),
      };
      // Back as itself: the sessions of the object it was distrusted as are closed.
      const before = distrusted.get(row.id);
      distrusted.delete(row.id);
      if (before) void before.admin.end().catch(() => {});
      byId.set(row.id, server);
    }
    await readRecorded();
    return down.map((entry) => entry.url);
  };

  const readRecorded = async () => {
    const rows = await withClient(
      centralUrl,
      async (client) =>
        (
          await client.query<{
            id: string;
            name: string;
            address: string;
            reachable: boolean;
            last_error: string;
            held_reason: string | null;
          }>(
            'SELECT id::text, name, address, reachable, last_error, held_reason FROM database_servers ORDER BY created_at',
          )
        ).rows,
    );
    unreachable.clear();
    for (const row of rows) {
      names.set(row.id, row.name);
      if (!byId.has(row.id))
        unreachable.set(row.id, {
          id: row.id,
          name: row.name,
          address: row.address,
          // Held says why nothing is placed there even when it answers: the first thing to know.
          reason: row.held_reason ?? row.last_error ?? 'not reached yet',
          identityMismatch: mismatched.has(row.id),
          held: row.held_reason !== null,
        });
    }
  };

  pending = await attach(pending);
  for (const server of unreachable.values())
    logger.error({ server: server.name, reason: server.reason }, 'clinic database server unreachable');

  return {
    byId,
    unreachable,
    names,
    refresh() {
      if (pending.length === 0 && distrusted.size === 0 && held.size === 0) return Promise.resolve();
      refreshing ??= (async () => {
        // A distrusted server's URL is attached again only once it answers as itself.
        const identified: string[] = [];
        for (const server of distrusted.values()) {
          const found = await systemIdentifier(server.url).catch(() => undefined);
          if (found === server.systemIdentifier) identified.push(server.url);
        }
        // A held one's, once released (by any instance, or an operator) or when another cluster
        // answers there (the recorded server back, or nothing): matched again, as at boot.
        const released = await releasedHeld(centralUrl, [...held.keys()]);
        const unheld: string[] = [];
        for (const [id, server] of held) {
          const found = await systemIdentifier(server.url).catch(() => undefined);
          if (released.has(id) || found !== server.systemIdentifier) unheld.push(server.url);
        }
        const tried = [...new Set([...pending, ...identified, ...unheld])];
        if (tried.length === 0) return;
        const still = await attach(tried);
        const back = tried.length - still.length;
        pending = still.filter((url) => !identified.includes(url));
        if (back > 0) logger.info({ back }, 'clinic database server reachable again');
      })().finally(() => {
        refreshing = undefined;
      });
      return refreshing;
    },
    async close() {
      await refreshing?.catch(() => {});
      await Promise.all(
        [...byId.values(), ...distrusted.values()].map((server) => server.admin.end().catch(() => {})),
      );
    },
  };
}

async function matchServers(
  client: pg.ClientBase,
  answered: { url: string; identifier: string }[],
  down: { url: string; error: string }[],
  open: Set<string>,
  identified: Set<string>,
  logger: Logger,
): Promise<{
  matched: { row: ServerRow; url: string }[];
  mismatched: string[];
  held: { row: ServerRow; url: string }[];
}> {
  const rows = (
    await client.query<ServerRow>(
      'SELECT id::text, name, system_identifier, address, held_reason FROM database_servers ORDER BY created_at',
    )
  ).rows;
  const matched: { row: ServerRow; url: string }[] = [];
  const mismatched: string[] = [];
  const held: { row: ServerRow; url: string }[] = [];
  const seen = new Set(open);
  const answeredIds = new Set(answered.map((entry) => entry.identifier));
  /**
   * The recorded server with live clinics that a cluster answering at `address` would stand in
   * for (docs/decisions/090): recorded there, not identified by this instance nor by any URL now.
   * Clinics placed on the other cluster would be lost when it comes back; one without a live
   * clinic has nothing to lose (a fresh setup, a server replaced on purpose).
   */
  const displaced = async (address: string, except?: string) => {
    for (const other of rows) {
      if (other.id === except || other.address !== address || other.system_identifier === null) continue;
      if (identified.has(other.id) || answeredIds.has(other.system_identifier)) continue;
      const { rows: counted } = await client.query<{ live: number }>(
        "SELECT count(*)::int AS live FROM clinics WHERE database_server_id = $1 AND status <> 'DELETED'",
        [other.id],
      );
      const live = counted[0]?.live ?? 0;
      if (live > 0) return { row: other, live };
    }
    return undefined;
  };
  const heldBecause = (
    name: string,
    address: string,
    identifier: string,
    behind: { row: ServerRow; live: number },
  ) =>
    `held: ${address} answers as a server not recorded before (system identifier ${identifier}) where ` +
    `clinic database server ${behind.row.name} (${behind.live} live clinic${behind.live === 1 ? '' : 's'}) ` +
    `is recorded; nothing is placed on it until ${behind.row.name} is found at another address or an ` +
    `operator accepts it (pnpm clinics:servers accept ${name})`;
  for (const { url, identifier } of answered) {
    const address = serverAddress(url);
    let row = rows.find((candidate) => candidate.system_identifier === identifier);
    // A server recorded before identities existed: adopted by the URL at its old address, or by
    // one whose server holds one of its clinics' databases (names carry the clinic id, so a match
    // is evidence, not a guess).
    row ??= await legacyRow(client, rows, url, address);
    if (row && seen.has(row.id)) {
      logger.warn(
        { server: row.name, url: redactUrl(url) },
        'two configured URLs reach one server; using the first',
      );
      continue;
    }
    if (!row) {
      const name = uniqueName(address, rows);
      const behind = await displaced(address);
      const reason = behind ? heldBecause(name, address, identifier, behind) : null;
      const inserted = await client.query<ServerRow>(
        `INSERT INTO database_servers (name, system_identifier, address, url, held_reason, last_error, held_for_id)
         VALUES ($1, $2, $3, $4, $5, $5, $6) RETURNING id::text, name, system_identifier, address, held_reason`,
        [name, identifier, address, redactUrl(url), reason, behind?.row.id ?? null],
      );
      row = inserted.rows[0] as ServerRow;
      rows.push(row);
      if (behind) {
        logger.error(
          { server: name, address, recorded: behind.row.name, live: behind.live },
          'unknown clinic database server at a recorded server’s address; held, nothing is placed on it',
        );
        seen.add(row.id);
        held.push({ row, url });
        continue;
      }
      logger.info({ server: name }, 'new clinic database server recorded');
    } else if (row.held_reason !== null) {
      const behind = await displaced(address, row.id);
      if (behind) {
        // Still standing in for it: kept held, its address and reason brought up to date.
        const reason = heldBecause(row.name, address, identifier, behind);
        await client.query(
          `UPDATE database_servers SET address = $2, url = $3, held_reason = $4, last_error = $4,
             held_for_id = $5, reachable = false, last_seen_at = now(), updated_at = now() WHERE id = $1`,
          [row.id, address, redactUrl(url), reason, behind.row.id],
        );
        row.address = address;
        row.held_reason = reason;
        seen.add(row.id);
        held.push({ row, url });
        continue;
      }
      // The conflict is gone: the recorded server is identified elsewhere, or it has no live
      // clinic left. Audited as released by the alert pass (provisioning/alerts.ts).
      await client.query('UPDATE database_servers SET held_reason = NULL WHERE id = $1', [row.id]);
      row.held_reason = null;
      logger.warn(
        { server: row.name, address },
        'held clinic database server released: the conflict is gone',
      );
    } else if (row.address !== address) {
      logger.warn(
        { server: row.name, from: row.address, to: address },
        'clinic database server re-addressed',
      );
    }
    await client.query(
      `UPDATE database_servers SET system_identifier = $2, address = $3, url = $4, reachable = true,
         last_error = NULL, last_seen_at = now(), updated_at = now() WHERE id = $1`,
      [row.id, identifier, address, redactUrl(url)],
    );
    row.system_identifier = identifier;
    row.address = address;
    seen.add(row.id);
    matched.push({ row, url });
  }
  for (const row of rows.filter((candidate) => !seen.has(candidate.id))) {
    const failed = down.find((entry) => serverAddress(entry.url) === row.address);
    const impostor = answered.find((entry) => serverAddress(entry.url) === row.address);
    const reason = failed
      ? `${redactUrl(failed.url)} does not answer: ${failed.error}`
      : impostor
        ? `${row.address} now answers as another server (system identifier ${impostor.identifier}, recorded ${row.system_identifier})`
        : 'no configured URL reaches it (CLINIC_DATABASE_SERVERS)';
    if (impostor && !failed) {
      mismatched.push(row.id);
      logger.error(
        { server: row.name, recorded: row.system_identifier, found: impostor.identifier },
        'clinic database server address answers as another server; its clinics are left alone',
      );
    }
    await client.query(
      'UPDATE database_servers SET reachable = false, last_error = $2, updated_at = now() WHERE id = $1',
      [row.id, reason.slice(0, 500)],
    );
  }
  return { matched, mismatched, held };
}

async function legacyRow(
  client: pg.ClientBase,
  rows: ServerRow[],
  url: string,
  address: string,
): Promise<ServerRow | undefined> {
  const legacy = rows.filter((row) => row.system_identifier === null);
  const sameAddress = legacy.find((row) => row.address === address);
  if (sameAddress) return sameAddress;
  for (const row of legacy) {
    const { rows: clinics } = await client.query<{ name: string }>(
      'SELECT database_name AS name FROM clinics WHERE database_server_id = $1',
      [row.id],
    );
    if (clinics.length === 0) continue;
    const held = await withClient(url, (server) =>
      server.query('SELECT 1 FROM pg_database WHERE datname = ANY($1) LIMIT 1', [clinics.map((c) => c.name)]),
    );
    if ((held.rowCount ?? 0) > 0) return row;
  }
  return undefined;
}

/** Which of the held servers `ids` are released in the central record (by any instance, or an operator). */
async function releasedHeld(centralUrl: string, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const { rows } = await withClient(centralUrl, (client) =>
    client.query<{ id: string }>(
      'SELECT id::text FROM database_servers WHERE id = ANY($1::uuid[]) AND held_reason IS NULL',
      [ids],
    ),
  );
  return new Set(rows.map((row) => row.id));
}

function uniqueName(address: string, rows: ServerRow[]): string {
  const taken = new Set(rows.map((row) => row.name));
  if (!taken.has(address)) return address;
  for (let i = 2; ; i++) if (!taken.has(`${address} (${i})`)) return `${address} (${i})`;
}
