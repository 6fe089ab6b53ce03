/**
 * The plan of a MOVE run (docs/decisions/049): its steps, in order, over one shared state. Before
 * the switch every step has an undo (the target's own creation dropped, the source unfrozen, the
 * publication and slot removed); from the switch on the clinic lives on the target, so the steps
 * after it are `afterCommit`: a failure there is recorded and left for an operator, never undone.
 */
import pg from 'pg';
import type { CentralPrisma, ClinicServer } from '../../db/database.js';
import { transaction } from '../../db/raw.js';
import { databaseUrl, withPooled } from '../../db/sql.js';
import { Prisma } from '../../generated/central/client.js';
import type { Logger } from '../../logger.js';
import {
  type ClinicClientCache,
  clinicDatabaseGrants,
  cloneDatabase,
  databaseExists,
  ensureRole,
  type Ledger,
  type LedgerObjects,
  type Plan,
  roleExists,
  type WarmPool,
} from '../provisioning/index.js';
import {
  copySequences,
  countRows,
  createPublication,
  createSubscription,
  currentLsn,
  dropPublication,
  dropSubscription,
  freezeRole,
  movedTables,
  replicationName,
  unfreezeRole,
  waitForInitialCopy,
  waitForLsn,
} from './replication.js';

export interface MoveState {
  clinicId: string;
  clinicName: string;
  /** The move's own record (clinic_moves). */
  moveId: string;
  source: ClinicServer;
  target: ClinicServer;
  databaseName: string;
  roleName: string;
  /** The clinic role's password, decrypted for the run only: the target's role gets the same one. */
  password: string;
  sessions: MoveSessions;
  /** Set by move_target: the run's publication, subscription and slot name. */
  replication?: string;
  tables?: string[];
  /** performance.now() when the freeze began. */
  frozenAt?: number;
  rowsVerified?: Record<string, number>;
  downtimeMs?: number;
}

export interface MoveStepDeps {
  prisma: CentralPrisma;
  ledger: Ledger;
  pool: WarmPool;
  clients: ClinicClientCache;
  deploymentId: string;
  logger: Logger;
  /** How long the quarantined source copy is kept before the purge. */
  sourceRetentionSeconds: number;
  /** The initial copy and first catch-up. @default 600000 */
  copyTimeoutMs?: number;
  /** The final catch-up, while the clinic is frozen. @default 30000 */
  finalCatchUpTimeoutMs?: number;
}

/**
 * Admin sessions held for the whole run: on the source and target clinic databases and on the
 * source server. Opening one costs milliseconds, which the freeze-to-switch window would pay.
 */
export class MoveSessions {
  private readonly open = new Map<string, Promise<pg.Client>>();

  constructor(
    private readonly source: ClinicServer,
    private readonly target: ClinicServer,
    private readonly database: string,
  ) {}

  sourceDb(): Promise<pg.Client> {
    return this.get('sourceDb', databaseUrl(this.source.url, this.database));
  }

  targetDb(): Promise<pg.Client> {
    return this.get('targetDb', databaseUrl(this.target.url, this.database));
  }

  sourceAdmin(): Promise<pg.Client> {
    return this.get('sourceAdmin', this.source.url);
  }

  /** Ends one session (a database about to be renamed or dropped), or all of them. */
  async close(which?: 'sourceDb' | 'targetDb' | 'sourceAdmin'): Promise<void> {
    const names = which ? [which] : [...this.open.keys()];
    for (const name of names) {
      const session = this.open.get(name);
      this.open.delete(name);
      await session?.then((client) => client.end()).catch(() => {});
    }
  }

  private get(name: string, url: string): Promise<pg.Client> {
    let session = this.open.get(name);
    if (!session) {
      session = (async () => {
        const client = new pg.Client({ connectionString: url, application_name: 'onramp-move' });
        // A session ended under us (a quarantine, a restart) fails its next query instead.
        client.on('error', () => {
          if (this.open.get(name) === session) this.open.delete(name);
        });
        await client.connect();
        return client;
      })();
      session.catch(() => this.open.delete(name));
      this.open.set(name, session);
    }
    return session;
  }
}

function targetObjects(state: MoveState): LedgerObjects {
  return {
    serverId: state.target.id,
    clinicId: state.clinicId,
    database: state.databaseName,
    role: state.roleName,
  };
}

/** The conninfo the target's subscription reaches the source database with (never logged). */
function sourceConninfo(state: MoveState): string {
  const url = new URL(databaseUrl(state.source.url, state.databaseName));
  url.searchParams.set('application_name', `onramp_move_${state.clinicId.slice(0, 8)}`);
  return url.toString();
}

const sinceFreeze = (state: MoveState) =>
  state.frozenAt === undefined ? 0 : Math.round(performance.now() - state.frozenAt);

/** The MOVE plan: its steps, in order, over one shared state. */
export function movePlan(deps: MoveStepDeps): Plan<MoveState> {
  const copyTimeoutMs = deps.copyTimeoutMs ?? 600_000;
  const finalTimeoutMs = deps.finalCatchUpTimeoutMs ?? 30_000;
  return {
    kind: 'MOVE',
    steps: [
      {
        name: 'move_target',
        async run(state, { runId }) {
          state.replication = replicationName(runId);
          await deps.prisma.clinicMove.update({ where: { id: state.moveId }, data: { runId } });
          const { target } = state;
          // Checked before anything is recorded: the undo drops only what the ledger gives this
          // run, so a database or role found there must never be written down as ours.
          await withPooled(target.admin, async (admin) => {
            if (await databaseExists(admin, state.databaseName))
              throw new Error(`database ${state.databaseName} already exists on ${target.name}`);
            if (await roleExists(admin, state.roleName))
              throw new Error(`role ${state.roleName} already exists on ${target.name}`);
          });
          await deps.ledger.record(targetObjects(state), runId);
          const spare = await withPooled(target.admin, async (admin) => {
            // The same role, password and grants as on the source: the clinic's stored
            // (encrypted) password keeps working once the central record points here.
            await ensureRole(admin, state.roleName, state.password);
            const grants = clinicDatabaseGrants(deps.deploymentId, state.databaseName, state.roleName);
            const claimed = await deps.pool.claim(admin, target, state.databaseName, grants);
            if (!claimed) {
              await cloneDatabase(admin, state.databaseName, target.template.name);
              await admin.query(grants);
            }
            return claimed;
          });
          return {
            note: `${spare ? 'claimed a warm spare' : 'cloned from the template'} on ${target.name}`,
          };
        },
        async undo(state, { runId }) {
          await state.sessions.close('targetDb');
          await deps.ledger.undoCreated(targetObjects(state), runId);
        },
      },
      {
        name: 'move_publication',
        async run(state) {
          const source = await state.sessions.sourceDb();
          state.tables = await movedTables(source);
          await createPublication(source, state.replication as string, state.tables);
          return { note: `${state.tables.length} tables: ${state.tables.join(', ')}` };
        },
        async undo(state) {
          if (state.replication) await dropPublication(await state.sessions.sourceDb(), state.replication);
        },
      },
      {
        name: 'move_subscription',
        async run(state) {
          await createSubscription(
            await state.sessions.targetDb(),
            state.replication as string,
            sourceConninfo(state),
          );
          return undefined;
        },
        async undo(state) {
          if (!state.replication) return;
          await dropSubscription(await state.sessions.targetDb(), state.replication, () =>
            state.sessions.sourceAdmin(),
          );
        },
      },
      {
        name: 'move_catch_up',
        async run(state) {
          const name = state.replication as string;
          const target = await state.sessions.targetDb();
          const source = await state.sessions.sourceAdmin();
          await waitForInitialCopy(target, name, state.tables?.length ?? 0, copyTimeoutMs);
          // Caught up with the source as of now: the freeze then waits only for what comes after.
          await waitForLsn(source, target, name, await currentLsn(source), copyTimeoutMs);
          return { note: 'initial copy done; the target follows the source' };
        },
      },
      {
        name: 'move_freeze',
        async run(state) {
          state.frozenAt = performance.now();
          await freezeRole(await state.sessions.sourceAdmin(), state.roleName);
          // Onramp's own cached sessions as the clinic role were ended too; let them reconnect fresh.
          await deps.clients.evict(state.clinicId);
          return { note: `writes frozen on ${state.source.name}` };
        },
        async undo(state) {
          // A fresh session: the held one may be what failed.
          await withPooled(state.source.admin, (admin) => unfreezeRole(admin, state.roleName));
        },
      },
      {
        name: 'move_final_catch_up',
        async run(state) {
          const source = await state.sessions.sourceAdmin();
          const lsn = await currentLsn(source);
          await waitForLsn(
            source,
            await state.sessions.targetDb(),
            state.replication as string,
            lsn,
            finalTimeoutMs,
          );
          return { note: `applied up to ${lsn}` };
        },
      },
      {
        name: 'move_sequences',
        async run(state) {
          const count = await copySequences(await state.sessions.sourceDb(), await state.sessions.targetDb());
          return count === 0 ? { skipped: 'no sequences' } : { note: `${count} sequences copied` };
        },
      },
      {
        name: 'move_verify',
        async run(state) {
          const tables = state.tables ?? [];
          const [source, target] = await Promise.all([
            state.sessions.sourceDb().then((db) => countRows(db, tables)),
            state.sessions.targetDb().then((db) => countRows(db, tables)),
          ]);
          const different = tables.filter((table) => source[table] !== target[table]);
          if (different.length > 0)
            throw new Error(
              `row counts differ: ${different.map((table) => `${table} ${source[table]} ≠ ${target[table]}`).join(', ')}`,
            );
          state.rowsVerified = source;
          const total = Object.values(source).reduce((sum, rows) => sum + rows, 0);
          return { note: `${total} rows in ${tables.length} tables, equal on both copies` };
        },
      },
      {
        name: 'move_switch',
        async run(state) {
          await transaction(deps.prisma, async (tx) => {
            const switched = await tx.execute(Prisma.sql`
              UPDATE clinics SET database_server_id = ${state.target.id}::uuid, updated_at = now()
              WHERE id = ${state.clinicId}::uuid AND database_server_id = ${state.source.id}::uuid
                AND status = 'READY'`);
            if (switched !== 1) throw new Error('the clinic changed during the move; it stays on the source');
            // The target's database and role, recorded PENDING by move_target, are the clinic's now.
            await tx.execute(deps.ledger.settleSql(state.clinicId));
          });
          state.downtimeMs = sinceFreeze(state);
          await deps.clients.evict(state.clinicId);
          await deps.prisma.clinicMove.update({
            where: { id: state.moveId },
            data: { downtimeMs: state.downtimeMs, rowsVerified: state.rowsVerified ?? {} },
          });
          return {
            note: `the clinic is on ${state.target.name}, writable again after ${state.downtimeMs} ms of write freeze`,
          };
        },
      },
      {
        name: 'move_end_subscription',
        afterCommit: true,
        async run(state) {
          const name = state.replication as string;
          await dropSubscription(await state.sessions.targetDb(), name, () => state.sessions.sourceAdmin());
          await dropPublication(await state.sessions.sourceDb(), name);
          return { note: 'subscription, slot and publication dropped' };
        },
      },
      {
        name: 'move_quarantine_source',
        afterCommit: true,
        async run(state) {
          await state.sessions.close();
          // Kept, not dropped (decision 040): the copy stays restorable until the purge.
          await deps.ledger.quarantineOnServer(
            state.clinicId,
            state.source.id,
            `moved to ${state.target.name}`,
            deps.sourceRetentionSeconds,
          );
          return { note: `the copy on ${state.source.name} is quarantined` };
        },
      },
    ],
  };
}
