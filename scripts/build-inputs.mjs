/** The content hash `pnpm start` compares to decide whether a build step is up to date. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Tests are not built (see server/tsconfig.build.json); editing one must not force a build. */
const IGNORED = /(^|\/)(node_modules|dist|test)(\/|$)|\.test\.tsx?$|\.test-support\.ts$/;

/**
 * sha256 over the relative path and the contents of every file under `inputs` (files or
 * directories, relative to `root`), sorted, minus `exclude` (path prefixes) and tests.
 * Missing inputs count as missing, so creating one changes the hash.
 * @param {string} root
 * @param {string[]} inputs
 * @param {string[]} [exclude]
 * @returns {string}
 */
export function hashInputs(root, inputs, exclude = []) {
  const files = [];
  const walk = (path) => {
    const name = relative(root, path);
    if (IGNORED.test(name) || exclude.some((prefix) => name === prefix || name.startsWith(`${prefix}/`)))
      return;
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path)) walk(join(path, entry));
    } else {
      files.push(name);
    }
  };
  const hash = createHash('sha256');
  for (const input of inputs) {
    const path = join(root, input);
    if (existsSync(path)) walk(path);
    else hash.update(`missing ${input}\0`);
  }
  for (const name of files.sort()) {
    hash.update(`${name}\0`);
    hash.update(readFileSync(join(root, name)));
    hash.update('\0');
  }
  return hash.digest('hex');
}
