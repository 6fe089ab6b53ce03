/**
 * What the steps of a clinic's runs share: the run's state (one mutable object through the
 * run) and the services the steps use.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { CentralPrisma, ClinicServer } from '../../../db/database.js';
import type { Migration } from '../../../db/migrator.js';
import type { CertificateIssuer } from '../../certificates/issuer.js';
import type { DnsProvider } from '../../dns/provider.js';
import type { ClinicClientCache } from '../clinic-clients.js';
import type { IntegrityContext } from '../integrity.js';
import type { Ledger, LedgerObjects } from '../ledger.js';
import { clinicDatabaseName, clinicRoleName, slug } from '../names.js';
import type { WarmPool } from '../warm-pool.js';

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
  /** The run's session on the clinic database as its role (engine/clinic-session.ts). */
  session?: Promise<pg.Client>;
  /** Set by the subdomain step: the name dns and ssl then work on, without reading it back. */
  subdomain?: string;
  /**
   * Set by central_records: the clinic row is this run's own, so nothing of it (a subdomain
   * reservation) can predate the run, and the subdomain step need not look.
   */
  createdInRun?: boolean;
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
  /**
   * Placement (ProvisioningService.placeClinic): create_database places a clinic its run created
   * anew when its server turns out to answer as another cluster (decision 086).
   */
  placeClinic(): Promise<ClinicServer>;
  baseDomain: string;
  /** Absent in scripts that publish no names: the dns step is then SKIPPED. */
  dns?: DnsProvider;
  /** Absent in scripts that issue no certificates: the ssl step is then SKIPPED. */
  certificates?: CertificateIssuer;
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

/** The state of a clinic that exists (a resume, an undo, a repair). */
export function existingClinicState(
  clinic: { id: string; name: string; country: string; databaseName: string; databaseRole: string },
  admin: { id: string; firstName: string; lastName: string; email: string | null } | null | undefined,
  server: ClinicServer,
): ProvisionState {
  return {
    clinicId: clinic.id,
    clinicName: clinic.name,
    country: clinic.country,
    companyName: clinic.name,
    admin: admin
      ? { userId: admin.id, firstName: admin.firstName, lastName: admin.lastName, email: admin.email ?? '' }
      : null,
    server,
    databaseName: clinic.databaseName,
    roleName: clinic.databaseRole,
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
