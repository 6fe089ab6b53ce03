/** A clinic migrations folder for a test: the repository's migrations and the test's own after them. */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLINIC_MIGRATIONS_DIR } from '../src/db/paths.js';
import { tempDir } from './harness.js';

/**
 * A folder (for CLINIC_MIGRATIONS_DIR) holding every migration of prisma/clinic/migrations, then
 * `added` in order (name → SQL): a deployment of a new clinic schema, as a test sees it.
 */
export function clinicMigrationsWith(added: Record<string, string>): string {
  const dir = tempDir('onramp-clinic-migrations-');
  cpSync(CLINIC_MIGRATIONS_DIR, dir, { recursive: true });
  for (const [name, sql] of Object.entries(added)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}
