import { encryptSecret } from '../../../../crypto.js';
import { migrate } from '../../../../db/migrator.js';
import { withServerClient } from '../../../../db/servers.js';
import {
  cloneDatabase,
  databaseExists,
  ensureRole,
  grantClinicRole,
  roleExists,
  tagClinicObjects,
} from '../../admin.js';
import { type ClinicHealth, clinicPassword } from '../../integrity.js';
import { randomPassword } from '../../secrets.js';
import type { Step, StepContext } from '../runner.js';
import type { ProvisionState, StepDeps } from '../state.js';
import { commitStep } from '../steps/commit.js';
import type { Transaction } from '../steps/hooks.js';
import type { Plan } from './plan.js';

export interface RepairState extends ProvisionState {
  /** The clinic's status when the repair started (a FAILED clinic becomes READY). */
  status: string;
  before: ClinicHealth;
  after?: ClinicHealth;
  /** What the repair did, in words, for the operator and the audit entry. */
  actions: string[];
  /** A READY clinic's database was recreated empty: its data is gone (decision 040). */
  dataLost: boolean;
}

export interface RepairHooks {
  /** The clinic's health, as the service checks and publishes it. */
  check(clinicId: string): Promise<ClinicHealth>;
  /** In the commit's transaction: the audit entries and alerts. */
  commit(tx: Transaction, state: RepairState, context: StepContext): Promise<void>;
}

/**
 * A repair (REPAIR): a missing database restored from quarantine, or recreated from the
 * template (for a clinic that held data, a declared loss); the role and its password; missing
 * migrations and dropped tables; grants; the admin's provider; a check; then the commit. Forward
 * only: a failed step stops the run, and a new repair runs every step again (each is idempotent).
 */
export function repairPlan(deps: StepDeps, hooks: RepairHooks): Plan<RepairState> {
  const database: Step<RepairState> = {
    name: 'create_database',
    async run(state) {
      const { server } = state;
      const before = state.actions.length;
      // An absent database on another cluster at the server's address is no loss to repair: the
      // session is checked to be on the server's cluster as it opens.
      await withServerClient(server, undefined, async (admin) => {
        // Concurrent repairs of one clinic are serialised.
        await admin.query('SELECT pg_advisory_lock(hashtext($1))', [`repair:${state.clinicId}`]);
        try {
          if (
            !(await databaseExists(admin, state.databaseName)) &&
            (await deps.ledger.restoreClinic(state.clinicId, { refuseDeleted: true }))
          )
            state.actions.push(`restored database ${state.databaseName} from quarantine`);
          if (!(await databaseExists(admin, state.databaseName))) {
            await cloneDatabase(admin, state.databaseName, server.template.name);
            state.dataLost = state.status === 'READY';
            state.actions.push(
              state.dataLost
                ? `recreated database ${state.databaseName} EMPTY from template ${server.template.name}: its data is lost`
                : `recreated database ${state.databaseName} from template ${server.template.name}`,
            );
          }
          const clinic = await deps.prisma.clinic.findUniqueOrThrow({ where: { id: state.clinicId } });
          const hadRole = await roleExists(admin, state.roleName);
          if (
            !hadRole ||
            !clinicPassword(clinic, deps.encryptionKey) ||
            state.before.dbStatus === 'UNHEALTHY'
          ) {
            const password = randomPassword();
            await ensureRole(admin, state.roleName, password);
            await deps.prisma.clinic.update({
              where: { id: state.clinicId },
              data: { databasePasswordEnc: encryptSecret(password, deps.encryptionKey, state.clinicId) },
            });
            state.actions.push(
              hadRole ? `reset the password of role ${state.roleName}` : `recreated role ${state.roleName}`,
            );
          }
          await tagClinicObjects(admin, deps.deploymentId, state.databaseName, state.roleName);
        } finally {
          await admin
            .query('SELECT pg_advisory_unlock(hashtext($1))', [`repair:${state.clinicId}`])
            .catch(() => {});
        }
      });
      await deps.clients.evict(state.clinicId);
      return done(state, before);
    },
  };
  const schema: Step<RepairState> = {
    name: 'migrate_database',
    async run(state) {
      const before = state.actions.length;
      await withServerClient(state.server, state.databaseName, async (client) => {
        const { applied, version } = await migrate(client, deps.clinicMigrations);
        for (const name of applied) state.actions.push(`applied migration ${name}`);
        await deps.prisma.clinic.update({ where: { id: state.clinicId }, data: { schemaVersion: version } });
        const { rows } = await client.query<{ relname: string }>(
          "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
        );
        const present = new Set(rows.map((row) => row.relname));
        for (const table of deps.integrity.shape.tables.filter((name) => !present.has(name))) {
          await client.query('BEGIN');
          try {
            for (const statement of deps.integrity.shape.statementsFor(table)) await client.query(statement);
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK').catch(() => {});
            throw error;
          }
          state.actions.push(`recreated table ${table}`);
        }
      });
      await grantClinicRole(state.server, state.databaseName, state.roleName);
      state.actions.push(`restored grants of role ${state.roleName}`);
      return done(state, before);
    },
  };
  const provider: Step<RepairState> = {
    name: 'seed_provider',
    async run(state) {
      const admin = await deps.prisma.user.findFirst({
        where: { clinicId: state.clinicId, role: 'CLINIC_ADMIN' },
        orderBy: { createdAt: 'asc' },
        select: { id: true, firstName: true, lastName: true, email: true },
      });
      if (!admin) return { skipped: 'no clinic admin' };
      const prisma = await deps.clients.get(state.clinicId);
      if (await prisma.healthcareProvider.findUnique({ where: { userId: admin.id }, select: { id: true } }))
        return { note: 'provider already present' };
      await prisma.healthcareProvider.create({
        data: { userId: admin.id, firstName: admin.firstName, lastName: admin.lastName, email: admin.email },
      });
      state.actions.push('seeded the healthcare provider of the clinic admin');
      return { note: 'seeded the healthcare provider of the clinic admin' };
    },
  };
  const check: Step<RepairState> = {
    name: 'verify_database',
    async run(state) {
      state.after = await hooks.check(state.clinicId);
      return { note: `the database is ${state.after.dbStatus}` };
    },
  };
  return {
    kind: 'REPAIR',
    steps: [database, schema, provider, check, commitStep(deps, hooks.commit)],
    suspendOn: () => true,
  };
}

/** The actions a step added, as its event's message. */
function done(state: RepairState, from: number) {
  const added = state.actions.slice(from);
  return added.length > 0 ? { note: added.join('; ') } : undefined;
}
