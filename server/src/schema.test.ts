import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './db/paths.js';
import { printedSchema } from './schema.js';

describe('server/schema.graphql', () => {
  it('is the schema printed from code (run `pnpm print-schema` after changing it)', () => {
    expect(readFileSync(resolve(REPO_ROOT, 'server/schema.graphql'), 'utf8')).toBe(printedSchema());
  });
});
