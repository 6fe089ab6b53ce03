/**
 * GraphiQL is a small page whose bundle, styles, workers and icon are cached, compressed static
 * files (README, "GraphiQL"), and it opens with the main flows as example tabs that are valid
 * operations of the schema.
 */
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { resolve } from 'node:path';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { buildSchema, parse, validate } from 'graphql';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../../test/harness.js';
import { REPO_ROOT } from '../db/paths.js';
import { AUTHORIZATION_PLACEHOLDER } from './graphiql-examples.js';

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

/** A raw GET (fetch would decompress): status, headers and the bytes as sent. */
function raw(path: string, headers: Record<string, string> = {}) {
  return new Promise<{
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: Buffer;
  }>((done, fail) => {
    get(`${t.url}${path}`, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', fail);
    }).on('error', fail);
  });
}

const page = await raw('/graphql', { accept: 'text/html' });
const html = page.body.toString('utf8');
const settings = JSON.parse(
  /<script type="application\/json" id="graphiql-settings">(.*?)<\/script>/s.exec(html)?.[1] ?? 'null',
) as {
  workers: Record<string, string>;
  options: { defaultTabs: { query: string; headers?: string }[] };
} | null;

describe('GraphiQL', () => {
  it('is a small page without inline scripts that loads its files from /graphql/assets/', () => {
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body.length).toBeLessThan(16 * 1024);
    const scripts = [...html.matchAll(/<script([^>]*)>/g)].map((match) => match[1] ?? '');
    expect(scripts.filter((attributes) => !/\bsrc="\/graphql\/assets\//.test(attributes))).toEqual([
      ' type="application/json" id="graphiql-settings"',
    ]);
    expect(String(page.headers['content-security-policy'])).toMatch(/script-src 'self' 'unsafe-eval';/);
    expect(String(page.headers['content-security-policy'])).toMatch(/worker-src 'self';/);
  });

  it('serves every file compressed (brotli, else gzip), cached for a year under its content hash', async () => {
    const files = [...html.matchAll(/(?:src|href)="(\/graphql\/assets\/[^"]+)"/g)].map(
      (match) => match[1] as string,
    );
    files.push(...Object.values(settings?.workers ?? {}));
    expect(files.map((file) => file.replace(/\.[0-9a-f]{16}\./, '.*.'))).toEqual([
      '/graphql/assets/favicon.*.ico',
      '/graphql/assets/graphiql.*.css',
      '/graphql/assets/boot.*.js',
      '/graphql/assets/graphiql.*.js',
      '/graphql/assets/editor.worker.*.js',
      '/graphql/assets/json.worker.*.js',
      '/graphql/assets/graphql.worker.*.js',
    ]);
    let sent = 0;
    let plain = 0;
    for (const file of files) {
      const identity = await raw(file);
      const br = await raw(file, { 'accept-encoding': 'gzip, deflate, br' });
      const gzip = await raw(file, { 'accept-encoding': 'gzip' });
      expect({ file, status: identity.status, cache: identity.headers['cache-control'] }).toEqual({
        file,
        status: 200,
        cache: 'public, max-age=31536000, immutable',
      });
      expect(br.headers['content-encoding']).toBe('br');
      expect(gzip.headers['content-encoding']).toBe('gzip');
      expect(identity.headers['content-encoding']).toBeUndefined();
      expect(brotliDecompressSync(br.body).equals(identity.body)).toBe(true);
      expect(gunzipSync(gzip.body).equals(identity.body)).toBe(true);
      sent += br.body.length;
      plain += identity.body.length;
    }
    // About 9 MB as one inline page before; the browser now fetches about 2 MB, once.
    expect(plain).toBeGreaterThan(8_000_000);
    expect(sent).toBeLessThan(2_500_000);
  });

  it('answers 404 for a file it does not have', async () => {
    expect((await raw('/graphql/assets/graphiql.0000000000000000.js')).status).toBe(404);
    expect((await raw('/graphql/assets/')).status).toBe(404);
  });

  it('opens with the main flows as tabs, each valid against the schema', () => {
    const schema = buildSchema(readFileSync(resolve(REPO_ROOT, 'server/schema.graphql'), 'utf8'));
    const tabs = settings?.options.defaultTabs ?? [];
    const operations = tabs.flatMap((tab) =>
      parse(tab.query).definitions.map((definition) => ('name' in definition ? definition.name?.value : '')),
    );
    expect(operations).toEqual([
      'RegisterClinic',
      'VerifyEmail',
      'ResendVerificationEmail',
      'RequestLoginCode',
      'SignInWithCode',
      'SignInWithPassword',
      'VerifyTwoFactor',
      'Me',
      'ClinicsHealth',
      'LiveProvisioning',
    ]);
    for (const tab of tabs) expect(validate(schema, parse(tab.query)).map(String)).toEqual([]);
    const signedIn = tabs.filter((tab) => tab.headers).map((tab) => JSON.parse(tab.headers as string));
    expect(signedIn).toEqual([
      { Authorization: AUTHORIZATION_PLACEHOLDER },
      { Authorization: AUTHORIZATION_PLACEHOLDER },
      { Authorization: AUTHORIZATION_PLACEHOLDER },
    ]);
  });
});
