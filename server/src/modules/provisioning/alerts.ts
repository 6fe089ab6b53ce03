/**
 * Alert e-mails to the super-admins about a clinic's data (issue 11): a database found missing,
 * a database recreated empty. Queued through the mail outbox like every other message.
 */
import type { CentralPrisma } from '../../db/database.js';
import { enqueueMail, type MailDb } from '../mail/service.js';

export interface ClinicAlert {
  kind: 'clinic_database_missing' | 'clinic_data_lost';
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
