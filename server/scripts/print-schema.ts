/** Writes server/schema.graphql from the code (`pnpm print-schema`); a test fails when it is stale. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { REPO_ROOT } from '../src/db/paths.js';
import { printedSchema } from '../src/schema.js';

const file = resolve(REPO_ROOT, 'server/schema.graphql');
writeFileSync(file, printedSchema());
console.log(`wrote ${file}`);
