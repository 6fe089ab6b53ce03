// Generates both Prisma clients without network access.
// `prisma generate` insists on locating a schema engine binary even though generating needs
// none; pointing it at any existing file keeps it from trying to download one.
import { execFileSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  CHECKPOINT_DISABLE: '1',
};
for (const schema of ['prisma/central/schema.prisma', 'prisma/clinic/schema.prisma']) {
  execFileSync('pnpm', ['exec', 'prisma', 'generate', '--no-hints', '--schema', resolve(root, schema)], {
    cwd: resolve(root, 'server'),
    env,
    stdio: 'inherit',
  });
}
