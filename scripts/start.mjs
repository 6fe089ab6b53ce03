/**
 * `pnpm start`: builds what changed, then runs the server in this same process (one process for
 * Ctrl-C and SIGTERM to reach). Each build step has inputs; the sha256 of their contents (not
 * their mtimes, which a checkout or a copy changes) is kept in node_modules/.cache/onramp-build/
 * after the step succeeded, and the step is skipped while it matches and its output exists.
 * `pnpm build` still builds everything.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { hashInputs } from './build-inputs.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const STAMPS = join(ROOT, 'node_modules', '.cache', 'onramp-build');
const SHARED = ['pnpm-lock.yaml', 'package.json', 'tsconfig.base.json'];

/** In order: codegen writes console/src/gql, an input of the console. */
const STEPS = [
  {
    name: 'console GraphQL types',
    inputs: [...SHARED, 'codegen.ts', 'server/schema.graphql', 'console/src'],
    exclude: ['console/src/gql'],
    output: 'console/src/gql',
    command: ['run', 'codegen'],
  },
  {
    name: 'console',
    inputs: [
      ...SHARED,
      'console/package.json',
      'console/index.html',
      'console/vite.config.ts',
      'console/tsconfig.json',
      'console/src',
    ],
    exclude: [],
    output: 'console/dist/index.html',
    command: ['--filter', '@onramp/console', 'run', 'build'],
  },
  {
    name: 'server',
    inputs: [
      ...SHARED,
      'server/package.json',
      'server/tsconfig.json',
      'server/tsconfig.build.json',
      'server/src',
    ],
    exclude: [],
    output: 'server/dist/main.js',
    command: ['--filter', '@onramp/server', 'run', 'build'],
  },
];

const started = Date.now();
mkdirSync(STAMPS, { recursive: true });
for (const step of STEPS) {
  const stamp = join(STAMPS, `${step.name.replaceAll(' ', '-')}.sha256`);
  const hash = hashInputs(ROOT, step.inputs, step.exclude);
  const built = existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : undefined;
  if (built === hash && existsSync(join(ROOT, step.output))) continue;
  process.stdout.write(`building the ${step.name}…\n`);
  const result = spawnSync('pnpm', ['-s', ...step.command], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) {
    process.stderr.write(`building the ${step.name} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(result.status ?? 1);
  }
  writeFileSync(stamp, `${hash}\n`);
}
if (Date.now() - started > 1000)
  process.stdout.write(`built in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);

await import(pathToFileURL(join(ROOT, 'server/dist/main.js')).href);
