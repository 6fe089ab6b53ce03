import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root, from both src/ (tsx, vitest) and dist/ (node). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CENTRAL_MIGRATIONS_DIR = resolve(REPO_ROOT, 'prisma/central/migrations');
export const CLINIC_MIGRATIONS_DIR = resolve(REPO_ROOT, 'prisma/clinic/migrations');
