/**
 * The provisioning steps of a clinic's database. Each is idempotent (safe to re-run after a
 * partial failure) and has an undo; they share one mutable state object through the saga.
 */
import { randomUUID } from 'node:crypto';
import type { CentralPrisma, ClinicServer } from '../../db/database.js';
import { type Migration, migrate } from '../../db/migrator.js';
import { databaseUrl, withClient, withPooled } from '../../db/sql.js';
import {
  cloneDatabase,
  databaseExists,
  ensureRole,
  grantClinicRole,
  grantConnect,
  grantGroupPrivileges,
  tagClinicObjects,
} from './admin.js';
import type { ClinicClientCache } from './clinic-clients.js';
import { checkClinicDatabaseIntegrity, clinicRoleUrl, type IntegrityContext } from './integrity.js';
import type { Ledger, LedgerObjects } from './ledger.js';
import { clinicDatabaseName, clinicRoleName, slug } from './names.js';
import type { SagaStep } from './saga.js';
import { encryptSecret, randomPassword } from './secrets.js';
import type { WarmPool } from './warm-pool.js';

export interface ClinicAdmin {
  userId: string | null;
  firstName: string;
  lastName: string;
  email: string;
}

export interface ProvisionState {
  clinicId: string;
  clinicName: string;
  country: string;
  companyName: string;
  admin: ClinicAdmin | null;
  server: ClinicServer;
  databaseName: string;
  roleName: string;
  /** Set by create_database; kept in memory only for the run (stored encrypted). */
  password?: string;
  /** How create_database got its database, for metrics and events. */
  databaseSource?: 'pool' | 'clone' | 'existing';
}

export interface StepDeps {
  prisma: CentralPrisma;
  pool: WarmPool;
  clients: ClinicClientCache;
  clinicMigrations: readonly Migration[];
  integrity: IntegrityContext;
  encryptionKey: Buffer;
  deploymentId: string;
  ledger: Ledger;
}

/** What the ledger records of a run's clinic database and role. */
export function ledgerObjects(state: ProvisionState): LedgerObjects {
  return {
    serverId: state.server.id,
    clinicId: state.clinicId,
    database: state.databaseName,
    role: state.roleName,
  };
}

export function newProvisionState(input: {
  clinicName: string;
  country: string;
  companyName?: string;
  admin?: ClinicAdmin | null;
  server: ClinicServer;
}): ProvisionState {
  const clinicId = randomUUID();
  return {
    clinicId,
    clinicName: input.clinicName,
    country: input.country,
    companyName: input.companyName ?? input.clinicName,
    admin: input.admin ?? null,
    server: input.server,
    databaseName: clinicDatabaseName(clinicId, input.clinicName),
    roleName: clinicRoleName(clinicId),
  };
}

/** A DNS label from the clinic name, unique thanks to the id suffix. */
export function defaultSubdomain(state: Pick<ProvisionState, 'clinicId' | 'clinicName'>): string {
  const base = slug(state.clinicName, 40).replaceAll('_', '-');
  const suffix = state.clinicId.slice(0, 8);
  return base ? `${base}-${suffix}` : `clinic-${suffix}`;
}

/** The clinic row a provisioning run starts from (PROVISIONING, its database and role named). */
export function clinicRecord(state: ProvisionState) {
  return {
    id: state.clinicId,
    name: state.clinicName,
    country: state.country,
    subdomain: defaultSubdomain(state),
    status: 'PROVISIONING' as const,
    databaseName: state.databaseName,
    databaseServerId: state.server.id,
    databaseRole: state.roleName,
  };
}

export function centralRecordsStep(deps: StepDeps): SagaStep<ProvisionState> {
  return {
    name: 'central_records',
    async run(state) {
      await deps.prisma.company.create({
        data: { name: state.companyName, clinics: { create: clinicRecord(state) } },
      });
      return undefined;
    },
    async undo(state) {
      // Deleting the company cascades to the clinic and its users.
      const clinic = await deps.prisma.clinic.findUnique({
        where: { id: state.clinicId },
        select: { companyId: true },
      });
      if (clinic) await deps.prisma.company.delete({ where: { id: clinic.companyId } });
    },
  };
}

export function createDatabaseStep(deps: StepDeps): SagaStep<ProvisionState> {
  return {
    name: 'create_database',
    async run(state, { runId }) {
      const { server } = state;
      const password = randomPassword();
      // Written down before it exists: what a crash leaves behind is known, never guessed.
      await deps.ledger.record(ledgerObjects(state), runId);
      // One warm admin session for all of it: new connections are the dominant cost here.
      await withPooled(server.admin, async (admin) => {
        if (await databaseExists(admin, state.databaseName)) state.databaseSource = 'existing';
        else if (await deps.pool.claim(admin, server, state.databaseName)) state.databaseSource = 'pool';
        else {
          await cloneDatabase(admin, state.databaseName, server.template.name);
          state.databaseSource = 'clone';
        }
        await ensureRole(admin, state.roleName, password);
        await grantConnect(admin, state.databaseName, state.roleName);
        await tagClinicObjects(admin, deps.deploymentId, state.databaseName, state.roleName);
      });
      // A clone carries the group's grants from the template; a database found from an earlier
      // attempt may predate a repair or an upgrade, so its grants are restored in full.
      if (state.databaseSource === 'existing')
        await grantClinicRole(server.url, state.databaseName, state.roleName);
      state.password = password;
      await deps.prisma.clinic.update({
        where: { id: state.clinicId },
        data: { databasePasswordEnc: encryptSecret(password, deps.encryptionKey, state.clinicId) },
      });
      const notes = {
        pool: 'claimed a warm spare',
        clone: 'cloned from the template',
        existing: 'database already existed',
      };
      return { note: notes[state.databaseSource ?? 'clone'] };
    },
    async undo(state, { runId }) {
      await deps.clients.evict(state.clinicId);
      await deps.ledger.undoCreated(ledgerObjects(state), runId);
    },
  };
}

export function migrateDatabaseStep(deps: StepDeps): SagaStep<ProvisionState> {
  return {
    name: 'migrate_database',
    async run(state) {
      // A fresh clone (or spare) is at the template's version by construction.
      const fresh = state.databaseSource === 'clone' || state.databaseSource === 'pool';
      const { applied, version } = fresh
        ? { applied: [], version: state.server.template.version }
        : await withClient(databaseUrl(state.server.url, state.databaseName), async (client) => {
            const result = await migrate(client, deps.clinicMigrations);
            if (result.applied.length > 0) await grantGroupPrivileges(client);
            return result;
          });
      await deps.prisma.clinic.update({ where: { id: state.clinicId }, data: { schemaVersion: version } });
      return applied.length > 0 ? { note: `applied ${applied.join(', ')}` } : undefined;
    },
  };
}

export function verifyDatabaseStep(deps: StepDeps): SagaStep<ProvisionState> {
  return {
    name: 'verify_database',
    async run(state) {
      const clinic = await deps.prisma.clinic.findUniqueOrThrow({ where: { id: state.clinicId } });
      // Checked as READY: the clinic row still says PROVISIONING, which the check would skip.
      // Existence is known (create_database just made it); the probe connects as the clinic role.
      const health = await checkClinicDatabaseIntegrity({ ...clinic, status: 'READY' }, deps.integrity, true);
      if (health.dbStatus !== 'HEALTHY') {
        throw new Error(`clinic database is ${health.dbStatus}: ${health.errors.join('; ')}`);
      }
      return undefined;
    },
  };
}

export function seedProviderStep(): SagaStep<ProvisionState> {
  return {
    name: 'seed_provider',
    async run(state) {
      const admin = state.admin;
      if (!admin) return { skipped: 'no clinic admin to seed' };
      if (!state.password) throw new Error('seed_provider needs the role password from create_database');
      // As the clinic role, on a short session: no pooled client lingers per new clinic.
      const url = clinicRoleUrl(state.server.url, state.databaseName, state.roleName, state.password);
      const inserted = await withClient(url, (client) =>
        client.query(
          `INSERT INTO healthcare_providers (user_id, first_name, last_name, email)
           SELECT $1::uuid, $2, $3, $4
            WHERE NOT EXISTS (SELECT 1 FROM healthcare_providers WHERE user_id IS NOT DISTINCT FROM $1::uuid AND email = $4)`,
          [admin.userId, admin.firstName, admin.lastName, admin.email],
        ),
      );
      return inserted.rowCount ? undefined : { note: 'provider already present' };
    },
  };
}

export function commitStep(deps: StepDeps): SagaStep<ProvisionState> {
  return {
    name: 'commit',
    async run(state) {
      await deps.prisma.$transaction(async (tx) => {
        await tx.clinic.update({ where: { id: state.clinicId }, data: { status: 'READY' } });
        await deps.ledger.settle(tx, state.clinicId);
      });
      return undefined;
    },
    async undo(state) {
      await deps.prisma.clinic.updateMany({ where: { id: state.clinicId }, data: { status: 'FAILED' } });
    },
  };
}
