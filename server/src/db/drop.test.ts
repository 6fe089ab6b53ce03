/** One destructive door: DROP DATABASE / DROP ROLE / DROP OWNED appear in server/src only in drop.ts. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './paths.js';

const SRC = join(REPO_ROOT, 'server/src');
const DESTRUCTIVE = /\bDROP\s+(DATABASE|ROLE|OWNED|USER)\b/i;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' ? [] : sources(path);
    return /\.tsx?$/.test(name) && !name.endsWith('.test.ts') ? [path] : [];
  });
}

describe('the one door of destructive SQL', () => {
  it('has no DROP DATABASE or DROP ROLE outside server/src/db/drop.ts', () => {
    const offenders = sources(SRC)
      .filter((path) => relative(SRC, path) !== 'db/drop.ts')
      .flatMap((path) =>
        readFileSync(path, 'utf8')
          .split('\n')
          .map((line, i) => ({ line, at: `${relative(SRC, path)}:${i + 1}` }))
          // Comments may name the statement; code may not.
          .filter(({ line }) => DESTRUCTIVE.test(line) && !/^\s*(\/\/|\*|\/\*)/.test(line)),
      )
      .map(({ at }) => at);
    expect(offenders).toEqual([]);
  });
});
