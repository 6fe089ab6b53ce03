/**
 * Alert e-mails to the super-admins about a clinic's data (issue 11): a database found missing,
 * a database recreated empty, a clinic server whose address answers as another server, an unknown
 * server held at a recorded one's address (docs/decisions/090). Queued
 * through the mail outbox like every other message.
 */
import type { CentralPrisma } from '../../db/database.js';
import type { ServerRegistry, UnreachableServer } from '../../db/servers.js';
import type { Logger } from '../../logger.js';
import { type AuditAction, recordAudit } from '../audit/record.js';
import { enqueueMail, type MailDb } from '../mail/service.js';

export interface ClinicAlert {
  kind:
    | 'clinic_database_missing'
    | 'clinic_data_lost'
    | 'database_server_identity_mismatch'
    | 'database_server_held';
  subject: string;
  text: string;
}

/** ONRAMP_ADMIN_EMAIL and every super-admin with an address, once each. */
export async function superAdminAddresses(prisma: CentralPrisma, adminEmail: string): Promise<string[]> {
  const admins = await prisma.user.findMany({ where: { role: 'SUPER_ADMIN' }, select: { email: true } });
  return [...new Set([adminEmail, ...admins.flatMap((user) => (user.email ? [user.email] : []))])];
}

/** Queues the alert to each recipient in the caller's transaction. */
export async function enqueueAlerts(
  tx: MailDb,
  recipients: string[],
  alert: ClinicAlert,
  key: Buffer,
): Promise<void> {
  for (const to of recipients) await enqueueMail(tx, { to, ...alert }, key);
}

const MISMATCH_ACTION: AuditAction = 'database_server.identity_mismatch';
const RESTORED_ACTION: AuditAction = 'database_server.identity_restored';
const HELD_ACTION: AuditAction = 'database_server.held';
const RELEASED_ACTION: AuditAction = 'database_server.released';
/** An operator's release of a held server (ProvisioningService.acceptServer). */
export const ACCEPTED_ACTION: AuditAction = 'database_server.accepted';
const HOLD_ACTIONS: AuditAction[] = [HELD_ACTION, RELEASED_ACTION, ACCEPTED_ACTION];

/**
 * A recorded clinic server whose address answers as another server (decision 040, "refuse rather
 * than guess"): audited and alerted to the super-admins once per incident; the incident ends when
 * the recorded server is reached again (audited too). Only servers holding clinics or ledger
 * entries count: one that never held anything has nothing to lose. A held server (decision 090)
 * is audited and alerted once per hold; its release by the conflict ending is audited too (an
 * operator's accept audits itself). Changes nothing else.
 * @returns how many incidents were alerted now.
 */
export async function alertServerIdentity(deps: {
  prisma: CentralPrisma;
  servers: Pick<ServerRegistry, 'byId' | 'unreachable'>;
  adminEmail: string;
  encryptionKey: Buffer;
  logger: Logger;
}): Promise<number> {
  const { prisma, servers } = deps;
  const last = new Map<string, string>();
  const lastHold = new Map<string, string>();
  for (const entry of await prisma.auditLog.findMany({
    where: {
      targetType: 'database_server',
      action: { in: [MISMATCH_ACTION, RESTORED_ACTION, ...HOLD_ACTIONS] },
    },
    orderBy: { id: 'asc' },
    select: { targetId: true, action: true },
  }))
    if (entry.targetId)
      ((HOLD_ACTIONS as string[]).includes(entry.action) ? lastHold : last).set(entry.targetId, entry.action);
  for (const id of servers.byId.keys()) {
    if (last.get(id) === MISMATCH_ACTION)
      await recordAudit(prisma, { action: RESTORED_ACTION, targetType: 'database_server', targetId: id });
    if (lastHold.get(id) === HELD_ACTION)
      await recordAudit(prisma, {
        action: RELEASED_ACTION,
        targetType: 'database_server',
        targetId: id,
        data: { reason: 'the recorded server it stood in for is found elsewhere or has no live clinic' },
      });
  }
  let alerted = 0;
  for (const server of servers.unreachable.values())
    if (server.held && lastHold.get(server.id) !== HELD_ACTION && (await alertHeld(deps, server)))
      alerted += 1;
  for (const server of servers.unreachable.values()) {
    if (!server.identityMismatch) continue;
    const held =
      (await prisma.clinic.count({ where: { databaseServerId: server.id } })) +
      (await prisma.clinicObject.count({ where: { serverId: server.id, state: { not: 'DROPPED' } } }));
    if (held === 0) continue;
    const created = await alertOnce(deps, server, {
      lock: `server-identity:${server.id}`,
      actions: [MISMATCH_ACTION, RESTORED_ACTION],
      open: MISMATCH_ACTION,
      alert: {
        kind: 'database_server_identity_mismatch',
        subject: `Onramp: clinic database server ${server.name} answers as another server`,
        text: [
          `The address ${server.address} of clinic database server ${server.name} answers, but as another PostgreSQL server: ${server.reason}.`,
          'Onramp changed nothing: the clinics on the recorded server are unavailable, and nothing on either server is quarantined or dropped.',
          'Point CLINIC_DATABASE_SERVERS at the recorded server again (a URL reaching it under any address is fine) and restart.',
        ].join('\n\n'),
      },
      logged: 'clinic database server identity mismatch; super-admins alerted',
    });
    if (created) alerted += 1;
  }
  return alerted;
}

/** Audits and alerts one held server (decision 090), unless another instance just did. */
function alertHeld(deps: AlertDeps, server: UnreachableServer): Promise<boolean> {
  return alertOnce(deps, server, {
    lock: `server-held:${server.id}`,
    actions: HOLD_ACTIONS,
    open: HELD_ACTION,
    // This instance's view may predate a release by another one (or an operator): the row decides.
    async stillOpen(tx) {
      const row = await tx.databaseServer.findUnique({
        where: { id: server.id },
        select: { heldReason: true },
      });
      return Boolean(row?.heldReason);
    },
    alert: {
      kind: 'database_server_held',
      subject: `Onramp: clinic database server ${server.name} is held`,
      text: [
        `A PostgreSQL server not recorded before answers at ${server.address}, where a recorded clinic database server with live clinics was expected: ${server.reason}.`,
        'Onramp recorded it as held: no clinic, spare or template is placed on it, and nothing on either server is quarantined or dropped. A clinic created there would be lost when the recorded server came back.',
        `If the recorded server is only reached at another address now, add that URL to CLINIC_DATABASE_SERVERS and restart: the hold ends by itself. If the new server is meant to stay, accept it: pnpm clinics:servers accept ${server.name} (or the acceptDatabaseServer mutation).`,
      ].join('\n\n'),
    },
    logged: 'clinic database server held; super-admins alerted',
  });
}

type AlertDeps = Parameters<typeof alertServerIdentity>[0];
type Transaction = Parameters<Parameters<CentralPrisma['$transaction']>[0]>[0];

/**
 * Audits `incident.open` on `server` and queues `incident.alert` to the super-admins, in one
 * transaction under the incident's advisory lock (instances passing at once: one writes it),
 * unless the latest of `incident.actions` on the server is `open` already (the incident is
 * alerted) or `stillOpen` says it ended meanwhile.
 * @returns whether this call alerted.
 */
async function alertOnce(
  deps: AlertDeps,
  server: UnreachableServer,
  incident: {
    lock: string;
    actions: AuditAction[];
    open: AuditAction;
    stillOpen?: (tx: Transaction) => Promise<boolean>;
    alert: ClinicAlert;
    logged: string;
  },
): Promise<boolean> {
  const { prisma } = deps;
  const recipients = await superAdminAddresses(prisma, deps.adminEmail);
  const created = await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtext(${incident.lock}))`;
    const latest = await tx.auditLog.findFirst({
      where: { targetType: 'database_server', targetId: server.id, action: { in: incident.actions } },
      orderBy: { id: 'desc' },
      select: { action: true },
    });
    if (latest?.action === incident.open) return false;
    if (incident.stillOpen && !(await incident.stillOpen(tx))) return false;
    await recordAudit(tx, {
      action: incident.open,
      targetType: 'database_server',
      targetId: server.id,
      data: { server: server.name, address: server.address, reason: server.reason },
    });
    await enqueueAlerts(tx, recipients, incident.alert, deps.encryptionKey);
    return true;
  });
  if (created) deps.logger.error({ server: server.name }, incident.logged);
  return created;
}
