/** Builds the console for the browser tests: fresh codegen, then a Vite build into `outDir`. */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const CONSOLE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO_ROOT = resolve(CONSOLE_DIR, '..');

export function buildConsole(outDir: string): void {
  // Generated operations must match the sources, or `graphql()` finds no document at run time.
  execFileSync(
    process.execPath,
    [join(REPO_ROOT, 'node_modules/@graphql-codegen/cli/cjs/bin.js'), '--config', 'codegen.ts', '--silent'],
    {
      cwd: REPO_ROOT,
      stdio: 'pipe',
    },
  );
  execFileSync(
    process.execPath,
    [
      join(CONSOLE_DIR, 'node_modules/vite/bin/vite.js'),
      'build',
      '--outDir',
      outDir,
      '--emptyOutDir',
      '--logLevel',
      'warn',
    ],
    { cwd: CONSOLE_DIR, stdio: 'pipe' },
  );
}
