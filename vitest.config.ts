import { defineConfig } from 'vitest/config';
import { scratchRoot } from './server/test/scratch.js';

// Every throw-away server, data folder and browser profile of the run goes where `os.tmpdir()`
// points: a tmpfs when there is one with room (docs/decisions/098). Set here, before the workers
// fork, so that they and every process they start inherit it.
process.env.TMPDIR = scratchRoot(4 * 2 ** 30);

export default defineConfig({
  resolve: {
    // graphql ships CJS (main) and ESM (module) builds. Node loads the CJS one for Pothos and
    // Yoga; Vite would pick the ESM one for our sources, and two graphql realms cannot mix.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: [
      'server/src/**/*.test.ts',
      'server/test/**/*.test.ts',
      'console/src/**/*.test.ts',
      'console/e2e/**/*.test.ts',
    ],
    // One embedded PostgreSQL for the whole run; each test file clones its own database.
    globalSetup: ['server/test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
    reporters: ['default', './server/test/summary-reporter.ts'],
    // Console output (test loggers write through it, see testLogger in server/test/harness.ts)
    // is kept with its test and printed only when that test fails: the run shows its results,
    // not the error logs of tests that break things on purpose.
    silent: 'passed-only',
  },
});
