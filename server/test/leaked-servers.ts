/**
 * PostgreSQL servers a test file started from this checkout and never stopped: its cleanup never
 * ran (an `afterAll` Vitest ignored, registered inside a test or a hook: harness.ts `afterFile`).
 * Once every file is done they are orphans (adopted by pid 1) that outlive the run, one data
 * directory and a few hundred MB each. Read from /proc (Linux).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../src/db/paths.js';

export interface LeakedServer {
  pid: number;
  dataDir: string;
}

/** This checkout's orphaned `postgres` postmasters. */
export function orphanedServers(): LeakedServer[] {
  const binaries = join(REPO_ROOT, 'node_modules');
  const found: LeakedServer[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv[0]?.startsWith(binaries) || !argv[0].endsWith('/bin/postgres')) continue;
      // The parent pid is the 4th field, after the command in parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (parent !== 1) continue;
      found.push({ pid: Number(entry), dataDir: argv[argv.indexOf('-D') + 1] ?? '?' });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}
