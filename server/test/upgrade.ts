/** A clinic's schema upgrade run through the engine as a rollout runs it, with one migration more. */
import type { App } from '../src/app.js';
import { checksum, type Migration } from '../src/db/migrator.js';
import type { ClinicServer } from '../src/db/servers.js';
import { clinicSubject } from '../src/modules/provisioning/index.js';
import { upgradePlan, upgradeState } from '../src/modules/rollouts/steps.js';

/**
 * Upgrades clinic `clinicId` on `server` to the app's clinic migrations plus one named `name`
 * running `sql`; resolves with the run's result.
 */
export async function runUpgrade(
  app: App,
  clinicId: string,
  server: ClinicServer,
  name: string,
  sql: string,
) {
  const { db, provisioning } = app.deps;
  const clinic = await db.prisma.clinic.findUniqueOrThrow({ where: { id: clinicId } });
  const added: Migration = { name, sql, checksum: checksum(sql) };
  const plan = upgradePlan({
    prisma: db.prisma,
    migrations: [...db.clinicMigrations, added],
    lockTimeoutMs: 5000,
    checkClinic: (id) => provisioning.checkClinic(id),
  });
  return provisioning.run(plan, clinicSubject(clinicId, clinic.name), upgradeState(clinicId, clinic, server));
}
