/**
 * Writing the audit log: every entry goes through {@link recordAudit} (or, inside a raw
 * statement, {@link auditActionSql}), so its action is one of {@link AUDIT_ACTIONS} and a reader
 * of the log (the console's filter, `auditLog(action:)`) can rely on the names.
 */
import { Prisma } from '../../generated/central/client.js';

/** Every action the log records, `<subject>.<what happened>`. */
export const AUDIT_ACTIONS = [
  // Sign-in and sessions (auth/)
  'auth.sign_in',
  'auth.sign_in_failed',
  'auth.sign_out',
  'auth.refresh_reuse',
  'auth.code_requested',
  'auth.2fa_enabled',
  'auth.2fa_disabled',
  'auth.recovery_code_used',
  // Accounts (users/, account/, auth/login-codes.ts)
  'user.email_verified',
  'user.email_proven',
  'user.created_from_client_record',
  'user.deleted',
  // Consents (consents/)
  'consent.accepted',
  'consent.withdrawn',
  // Clinic people (members/, clients/)
  'member.invited',
  'member.activated',
  'client.added',
  // Registration (registration/)
  'registration.completed',
  'registration.failed',
  'registration.expired',
  'registration.reconciled',
  // Onboarding service (onboarding/)
  'application.registered',
  'application.key_rotated',
  'application.key_revoked',
  'onboarding.started',
  'onboarding.provisioned',
  'onboarding.completed',
  'onboarding.api_key_rotated',
  'onboarding.api_key_revoked',
  // Clinic operations (provisioning/)
  'clinic.repair',
  'clinic.data_lost',
  'clinic.database_missing',
  'database_server.identity_mismatch',
  'database_server.identity_restored',
  'database_server.held',
  'database_server.released',
  'database_server.accepted',
  'clinic.retry_provisioning',
  'clinic.delete',
  'clinic.restore',
  'clinic.purge',
  'clinic_object.restore',
  'clinic.move',
  'clinic.upgrade',
  'rollout.start',
  'rollout.pause',
  'rollout.resume',
  'rollout.abort',
  'rollout.complete',
  'webhook.endpoint_created',
  'webhook.endpoint_deleted',
  'webhook.delivery_replayed',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** One entry: its action, who (actor), where (clinic, address), to what (target) and details. */
export type AuditEntry = Omit<Prisma.AuditLogUncheckedCreateInput, 'id' | 'at' | 'action'> & {
  action: AuditAction;
};

/**
 * Who asked for an action, for its entry: the signed-in person (and their address), or nobody
 * (`userId: null`) when Onramp acts by itself, e.g. the repair at sign-in.
 */
export interface AuditActor {
  userId: string | null;
  ip?: string | null;
}

/**
 * Writes one entry with `db`, a client or the transaction of the action it records (then the
 * entry exists exactly when the action does). Returns Prisma's promise, so it also fits in a
 * batch `$transaction([...])`.
 */
export function recordAudit(db: Pick<Prisma.TransactionClient, 'auditLog'>, entry: AuditEntry) {
  return db.auditLog.create({ data: entry, select: { id: true } });
}

/**
 * Writes the entry of an action on one clinic, which is both where it happened and its target;
 * `actor` when someone asked for it.
 */
export function recordClinicAudit(
  db: Pick<Prisma.TransactionClient, 'auditLog'>,
  action: AuditAction,
  clinicId: string,
  details: ClinicAuditDetails = {},
) {
  return recordAudit(db, clinicAuditEntry(action, clinicId, details));
}

/** Who asked for an action on a clinic, and its details. */
export interface ClinicAuditDetails {
  actor?: AuditActor;
  data?: Prisma.InputJsonValue;
}

/** The entry of an action on one clinic ({@link recordClinicAudit}, {@link auditSql}). */
export function clinicAuditEntry(
  action: AuditAction,
  clinicId: string,
  details: ClinicAuditDetails = {},
): AuditEntry {
  return {
    action,
    actorId: details.actor?.userId ?? null,
    ip: details.actor?.ip ?? null,
    clinicId,
    targetType: 'clinic',
    targetId: clinicId,
    data: details.data,
  };
}

/**
 * {@link recordAudit} as a statement, for a step's pg transaction (db/raw.ts `transaction`) or a
 * larger statement: the same columns, `data` as JSON (`{}` when absent, the column's default).
 */
export function auditSql(entry: AuditEntry): Prisma.Sql {
  return Prisma.sql`
    INSERT INTO audit_log (actor_id, clinic_id, action, target_type, target_id, data, ip)
    VALUES (${entry.actorId ?? null}::uuid, ${entry.clinicId ?? null}::uuid, ${entry.action}::text,
      ${entry.targetType ?? null}::text, ${entry.targetId ?? null}::text,
      ${JSON.stringify(entry.data ?? {})}::jsonb, ${entry.ip ?? null}::text)`;
}

/** An action as a parameter of a raw statement (`INSERT INTO audit_log (action, …) VALUES (${…}, …)`). */
export function auditActionSql(action: AuditAction): Prisma.Sql {
  return Prisma.sql`${action}::text`;
}
