/**
 * `pnpm clinics:restore <trashName|clinicId>`: restores a quarantined clinic database (decision
 * 040) — a DELETED clinic's (READY again, as restoreClinic does, without republishing its DNS:
 * use the mutation for that) or one a run that never committed left (back under its own name,
 * kept). Exits 1 when there is nothing to restore.
 */
import { runOperatorCommand } from './operator.js';

const target = process.argv[2];
if (!target) {
  console.error('usage: pnpm clinics:restore <trashName|clinicId>  (see zombieReport { quarantined })');
  process.exit(2);
}
await runOperatorCommand(async ({ provisioning }) => {
  console.log(await provisioning.restoreQuarantined(target));
});
