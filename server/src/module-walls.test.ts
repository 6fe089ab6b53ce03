/**
 * Module walls that the compiler does not check (docs/decisions/054): what may import what, and
 * where some things may be written at all. Each test names the offending files.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './db/paths.js';

const SRC = join(REPO_ROOT, 'server/src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'generated' ? [] : sources(path);
    return /\.tsx?$/.test(name) && !/\.test(-support)?\.ts$/.test(name) ? [path] : [];
  });
}

/** The server/src-relative files `file` imports (relative imports only, `.js` → `.ts`). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(SRC, file), 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+'(\.[^']+)'/gms)].map((match) =>
    relative(SRC, resolve(dirname(join(SRC, file)), (match[1] ?? '').replace(/\.js$/, '.ts'))),
  );
}

const files = sources(SRC).map((path) => relative(SRC, path));

describe('module walls', () => {
  it('context.ts imports no file that imports it back', () => {
    const circles = importsOf('context.ts').filter(
      (file) => files.includes(file) && importsOf(file).includes('context.ts'),
    );
    expect(circles).toEqual([]);
  });

  it('only the composition root reaches into registration/; what accounts share is in users/', () => {
    const root = ['context.ts', 'wiring.ts', 'schema.ts'];
    const offenders = files
      .filter((file) => !file.startsWith('modules/registration/') && !root.includes(file))
      .filter((file) => importsOf(file).some((target) => target.startsWith('modules/registration/')));
    expect(offenders).toEqual([]);
  });

  it('other modules reach provisioning through its index.ts, and its GraphQL types through its schema.ts', () => {
    const face = ['modules/provisioning/index.ts', 'modules/provisioning/schema.ts'];
    const offenders = files
      .filter((file) => file.startsWith('modules/') && !file.startsWith('modules/provisioning/'))
      .filter((file) =>
        importsOf(file).some(
          (target) => target.startsWith('modules/provisioning/') && !face.includes(target),
        ),
      );
    expect(offenders).toEqual([]);
  });

  it('services throw domain errors: only errors.ts makes the RATE_LIMITED GraphQL error', () => {
    const offenders = files.filter(
      (file) => file !== 'errors.ts' && /\brateLimited\(/.test(readFileSync(join(SRC, file), 'utf8')),
    );
    expect(offenders).toEqual([]);
  });

  it('ids are checked by ids.ts alone', () => {
    const offenders = files
      .filter((file) => file !== 'ids.ts')
      .filter((file) => /\[0-9a-f(A-F)?\]\{8\}-|\bz\.uuid\(/.test(readFileSync(join(SRC, file), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('jobs are queued and managed through the typed task map (jobs/) alone', () => {
    const offenders = files
      .filter((file) => !file.startsWith('jobs/'))
      .filter((file) => /graphile_worker\./.test(readFileSync(join(SRC, file), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('AES-GCM is crypto.ts: every file imports it from there, none re-exports it', () => {
    const offenders = files
      .filter((file) => file !== 'crypto.ts')
      .filter((file) => {
        const text = readFileSync(join(SRC, file), 'utf8');
        const reexported = /\bexport\s*\{[^}]*\b(?:en|de)cryptSecret\b[^}]*\}\s*from\b/.test(text);
        const borrowed =
          /\bimport\s*\{[^}]*\b(?:en|de)cryptSecret\b[^}]*\}\s*from\s*'(?![./]*crypto\.js')/.test(text);
        return reexported || borrowed;
      });
    expect(offenders).toEqual([]);
  });

  it('audit entries are written through audit/record.ts, with typed action names', () => {
    const offenders = files
      .filter((file) => file !== 'modules/audit/record.ts')
      .filter((file) =>
        /\.auditLog\s*\.create(Many)?\(|INSERT INTO audit_log \([^)]*\)\s*(VALUES \(|SELECT )'/.test(
          readFileSync(join(SRC, file), 'utf8'),
        ),
      );
    expect(offenders).toEqual([]);
  });
});
