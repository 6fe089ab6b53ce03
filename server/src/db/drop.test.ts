/**
 * One destructive door: DROP DATABASE / DROP ROLE / DROP OWNED appear in server/src only in drop.ts,
 * and every other statement that can take clinic data or central accounts away (a database renamed
 * out of its name, a TRUNCATE, a deletion of companies, clinics or users) is in a short inventory
 * below, each with the decision that authorises it. A new one fails here until it is argued.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './paths.js';

const SRC = join(REPO_ROOT, 'server/src');
const DESTRUCTIVE = /\bDROP\s+(DATABASE|ROLE|OWNED|USER|SCHEMA|TABLE)\b/gi;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' ? [] : sources(path);
    return /\.tsx?$/.test(name) && !name.endsWith('.test.ts') ? [path] : [];
  });
}

/**
 * The file's code as one line: comments out (they may name a statement; code may not), spaces
 * collapsed and string pieces glued, so that a statement split over lines (`DROP\n DATABASE`) or
 * over a concatenation (`'DROP ' + 'DATABASE'`) is still seen.
 */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .split('\n')
    .filter((line) => !/^\s*\/\//.test(line))
    .map((line) => line.replace(/\s\/\/\s.*$/, ''))
    .join(' ')
    .replace(/['"`]\s*\+\s*['"`]/g, '')
    .replace(/\s+/g, ' ');
}

function count(pattern: RegExp): Record<string, number> {
  const found: Record<string, number> = {};
  for (const path of sources(SRC)) {
    const hits = code(readFileSync(path, 'utf8')).match(pattern)?.length ?? 0;
    if (hits > 0) found[relative(SRC, path)] = hits;
  }
  return found;
}

describe('the one door of destructive SQL', () => {
  it('has no DROP DATABASE or DROP ROLE outside server/src/db/drop.ts', () => {
    // drop.ts: DROP DATABASE, DROP OWNED and DROP ROLE, each on a recorded decision (040, 041).
    expect(count(DESTRUCTIVE)).toEqual({ 'db/drop.ts': 3 });
  });

  it('sees a statement split over lines or string pieces', () => {
    expect(code('await admin.query(\n  `DROP\n   DATABASE " + name`);').match(DESTRUCTIVE)).toHaveLength(1);
    expect(code("query('DROP ' + 'ROLE ' + role)").match(DESTRUCTIVE)).toHaveLength(1);
    expect(code('// DROP DATABASE in a comment\n/* DROP ROLE */ run();').match(DESTRUCTIVE)).toBeNull();
  });

  it('has no TRUNCATE anywhere', () => {
    expect(count(/\bTRUNCATE\s/gi)).toEqual({});
  });

  it('renames a database away from its name only where the ledger or a clone build decides', () => {
    expect(count(/\bALTER\s+DATABASE\s+\S+\s+RENAME\b/gi)).toEqual({
      // Quarantine (clinic → trash name) and restore (trash → clinic name), decision 040.
      'modules/provisioning/ledger.ts': 2,
      // A verified spare takes the clinic's name; an unused one is renamed back (decision 055).
      'modules/provisioning/warm-pool.ts': 2,
      // The template build takes the template's name once complete.
      'db/clinic-template.ts': 1,
    });
  });

  it('deletes companies, clinics or users only in the four places that decide it', () => {
    const deletions = count(
      /\b(company|clinic|user)\.delete(Many)?\(|DELETE\s+FROM\s+(companies|clinics|users)\b/gi,
    );
    expect(deletions).toEqual({
      // The purge: a DELETED clinic's rows once its database and role are DROPPED (decision 040).
      'modules/provisioning/service.ts': 2,
      // A registration's own undo of the records its live run created (decision 043).
      'modules/provisioning/engine/steps/central-records.ts': 1,
      // An unverified registration's expiry, a DELETE run that quarantines first (decision 018).
      'modules/registration/service.ts': 1,
      // An abandoned registration rolled back; its database stays in the ledger (decision 058).
      'modules/registration/reconciler.ts': 1,
    });
  });
});
