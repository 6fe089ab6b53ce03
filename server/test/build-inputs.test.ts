/**
 * `pnpm start` skips a build step while the content hash of its inputs is unchanged
 * (scripts/start.mjs, issue 15 item 9): contents count, mtimes and tests do not.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script of the repository root, without types
import { hashInputs } from '../../scripts/build-inputs.mjs';

const hash = hashInputs as (root: string, inputs: string[], exclude?: string[]) => string;

describe('the inputs hash of a build step', () => {
  const root = mkdtempSync(join(tmpdir(), 'onramp-build-inputs-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'src', 'gql'), { recursive: true });
  writeFileSync(join(root, 'src', 'main.ts'), 'export const a = 1;\n');
  writeFileSync(join(root, 'src', 'gql', 'graphql.ts'), 'generated\n');
  writeFileSync(join(root, 'package.json'), '{}\n');
  const inputs = ['package.json', 'src'];
  const first = hash(root, inputs, ['src/gql']);

  it('is stable while contents are, whatever the mtimes', () => {
    utimesSync(join(root, 'src', 'main.ts'), new Date(), new Date(Date.now() + 60_000));
    expect(hash(root, inputs, ['src/gql'])).toBe(first);
  });

  it('ignores tests, dist, node_modules and excluded paths', () => {
    writeFileSync(join(root, 'src', 'main.test.ts'), 'it()\n');
    mkdirSync(join(root, 'src', 'node_modules'), { recursive: true });
    writeFileSync(join(root, 'src', 'node_modules', 'x.js'), 'x\n');
    writeFileSync(join(root, 'src', 'gql', 'graphql.ts'), 'regenerated\n');
    expect(hash(root, inputs, ['src/gql'])).toBe(first);
  });

  it('changes with a file’s contents, a new file, a renamed file or a missing input', () => {
    writeFileSync(join(root, 'src', 'main.ts'), 'export const a = 2;\n');
    const edited = hash(root, inputs, ['src/gql']);
    expect(edited).not.toBe(first);
    writeFileSync(join(root, 'src', 'extra.ts'), '\n');
    expect(hash(root, inputs, ['src/gql'])).not.toBe(edited);
    expect(hash(root, [...inputs, 'vite.config.ts'], ['src/gql'])).not.toBe(hash(root, inputs, ['src/gql']));
  });
});
