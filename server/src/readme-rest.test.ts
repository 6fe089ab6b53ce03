/**
 * What an integrator and an operator copy from the README, run as written: its REST `curl`
 * commands (the super-admin's `/api/v1/applications/register`, the onboarding `start`), then every
 * row of the onboarding route table, whose status and answer fields are read from the table itself,
 * and the SQL of its `pnpm db:psql -c '…'` examples on the central database. Only `$MASTER_KEY`,
 * `$(pnpm -s admin:token)` and the port are substituted (the scripts themselves are run in
 * operator-scripts.test.ts; the JavaScript snippets in webhooks.test.ts; the GraphQL `curl`s in
 * readme-graphql.test.ts).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { createClinic } from '../test/registration-flow.js';
import { REPO_ROOT } from './db/paths.js';
import { signRequest } from './modules/onboarding/api-credentials.js';

const README = readFileSync(resolve(REPO_ROOT, 'README.md'), 'utf8');

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

/** The shell commands of the README's `sh` blocks, continuation lines joined. */
function shellCommands(): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
  return blocks.flatMap((block) =>
    block
      .replace(/\\\n\s*/g, ' ')
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean),
  );
}

/** Words of one command line as sh reads them (quotes, no expansion: `$X` stays as written). */
function words(line: string): string[] {
  const found: string[] = [];
  const pattern = /'([^']*)'|"((?:[^"\\]|\\.|\$\([^)]*\))*)"|(\S+)/g;
  for (const match of line.matchAll(pattern)) {
    if (match[1] !== undefined) found.push(match[1]);
    else if (match[2] !== undefined) found.push(match[2].replace(/\\(.)/g, '$1'));
    else found.push(match[3] ?? '');
  }
  return found;
}

interface Curl {
  line: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

/** Every `curl … localhost:4000/api/…` of the README, parsed. */
function restCurls(): Curl[] {
  return shellCommands()
    .filter((line) => /^curl .*localhost:4000\/api\//.test(line))
    .map((line) => {
      const argv = words(line);
      const curl: Curl = { line, method: 'GET', path: '', headers: {} };
      for (let i = 1; i < argv.length; i += 1) {
        const word = argv[i] ?? '';
        if (word === '-H') {
          const [name, ...value] = (argv[++i] ?? '').split(':');
          curl.headers[(name ?? '').trim().toLowerCase()] = value.join(':').trim();
        } else if (word === '-d') {
          curl.body = argv[++i];
          curl.method = 'POST';
        } else if (word === '-X') {
          curl.method = argv[++i] ?? '';
        } else if (word.startsWith('localhost:4000/')) {
          curl.path = word.slice('localhost:4000'.length);
        }
      }
      return curl;
    });
}

interface RouteRow {
  method: string;
  path: string;
  status: number;
  /** Fields of the answer the row names, with the literal value it gives for some. */
  fields: Record<string, string | boolean | number | undefined>;
  /** For a field holding a list of objects, the fields the row names for each of them. */
  items: Record<string, RouteRow['fields']>;
  /** Fields of the request body the row names (`for { a, b }`). */
  request: string[];
}

/** A value the table gives (`"pending"`, `true`), or undefined for a field named only. */
function literal(text: string): string | boolean | number | undefined {
  return /^("[^"]*"|true|false|\d+)$/.test(text.trim()) ? (JSON.parse(text) as string) : undefined;
}

/**
 * Field names of a `{ a, b: "x", c: [{ d, e }] }` as the table writes them: a literal value is
 * kept, a list of objects gives its items' fields under `items`.
 */
function fieldsOf(text: string): Pick<RouteRow, 'fields' | 'items'> {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === ',' && depth === 0) {
      parts.push(current);
      current = '';
      continue;
    }
    if (char === '[' || char === '{') depth += 1;
    if (char === ']' || char === '}') depth -= 1;
    current += char;
  }
  parts.push(current);
  const fields: RouteRow['fields'] = {};
  const items: RouteRow['items'] = {};
  for (const part of parts) {
    let [name = '', ...rest] = part.split(':');
    const value = rest.join(':').trim();
    if (!/^"?[a-z_]+"?$/.test(name.trim())) continue;
    name = name.trim().replaceAll('"', '');
    fields[name] = literal(value);
    const inner = /^\[\{(.*)\}\]$/.exec(value)?.[1];
    if (inner) items[name] = fieldsOf(inner).fields;
  }
  return { fields, items };
}

/** The rows of the route table of "Onboarding service (REST, `/api/v1`)". */
function routeTable(): RouteRow[] {
  const start = README.indexOf('| route ');
  const table = README.slice(start, README.indexOf('\n\n', start));
  const rows: RouteRow[] = [];
  for (const line of table.split('\n').slice(2)) {
    const [, route = '', , success = ''] = line.split('|').map((cell) => cell.trim());
    const [method = '', path = ''] = route.replaceAll('`', '').split(' ');
    const status = Number(/^(\d{3}) /.exec(success)?.[1]);
    let fields: RouteRow['fields'];
    let items: RouteRow['items'] = {};
    if (success.startsWith(`${status} \`start\`'s fields`)) {
      // "`start`'s fields, with `a: "x"`, plus `b`, `c` (once, when `d`)": the field names (not
      // the values) of the start row, and the ones this row names, with the values it gives.
      const named = success.replace(/\([^)]*\)|`start`'s/g, '').matchAll(/`([a-z_]+)(?:: ([^`]+))?`/g);
      fields = Object.fromEntries(
        Object.keys(rows.find((entry) => entry.path.endsWith('/start'))?.fields ?? {}).map((name) => [
          name,
          undefined,
        ]),
      );
      for (const [, name = '', value] of named) fields[name] = literal(value ?? '');
    } else {
      ({ fields, items } = fieldsOf(/`\{ ([^`]*) \}`/.exec(success)?.[1] ?? ''));
    }
    const request = Object.keys(fieldsOf(/ for `\{ ([^`]*) \}`/.exec(success)?.[1] ?? '').fields);
    rows.push({ method, path, status, fields, items, request });
  }
  return rows;
}

/** The answer's JSON, checked against a row of the table: its status and every field it names. */
function expectRow(row: RouteRow | undefined, answer: { status: number; body: Record<string, unknown> }) {
  expect(row, 'a row of the route table').toBeDefined();
  const named = Object.fromEntries(
    Object.entries(row?.fields ?? {}).map(([name, value]) => [
      name,
      value === undefined ? (name in answer.body ? 'present' : 'missing') : answer.body[name],
    ]),
  );
  const expected = Object.fromEntries(
    Object.entries(row?.fields ?? {}).map(([name, value]) => [name, value ?? 'present']),
  );
  expect({ route: `${row?.method} ${row?.path}`, status: answer.status, ...named }).toEqual({
    route: `${row?.method} ${row?.path}`,
    status: row?.status,
    ...expected,
  });
}

async function send(method: string, path: string, headers: Record<string, string>, body?: string) {
  const response = await fetch(`${t.url}${path}`, { method, headers, body });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A request signed with the API credentials, as "Signed API requests" describes. */
function signed(credentials: { apiKey: string; apiSecret: string }, method: string, path: string, body = '') {
  const timestamp = String(Math.floor(Date.now() / 1000));
  return send(
    method,
    path,
    {
      'x-api-key': credentials.apiKey,
      'x-onramp-timestamp': timestamp,
      'x-onramp-signature': signRequest(credentials.apiSecret, { method, path, timestamp, body }),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body || undefined,
  );
}

describe("the README's REST commands and route table", () => {
  const curls = restCurls();
  const table = routeTable();
  const row = (method: string, path: string) =>
    table.find((entry) => entry.method === method && entry.path === path);

  it('are found: the register and start commands, and the eight routes with their fields', () => {
    expect(curls.map((curl) => `${curl.method} ${curl.path}`)).toEqual([
      'POST /api/v1/applications/register',
      'POST /api/v1/onboarding/start',
    ]);
    expect(table.map((entry) => `${entry.method} ${entry.path} ${entry.status}`)).toEqual([
      'POST /api/v1/applications/register 201',
      'POST /api/v1/onboarding/start 201',
      'POST /api/v1/onboarding/provision 200',
      'GET /api/v1/onboarding/status/{uuid} 200',
      'POST /api/v1/onboarding/{uuid}/complete 200',
      'POST /api/v1/webhooks 201',
      'GET /api/v1/webhooks 200',
      'DELETE /api/v1/webhooks/{id} 200',
    ]);
    expect(Object.keys(row('POST', '/api/v1/onboarding/provision')?.fields ?? {})).toContain('api_secret');
  });

  it('answer as written, then each route answers what its row says', async () => {
    const admin = (await t.superAdmin()).authorization.replace(/^Bearer /, '');
    const substitute = (text: string, masterKey = '') =>
      text.replace('$(pnpm -s admin:token)', admin).replace('$MASTER_KEY', masterKey);
    const run = async (curl: Curl | undefined, masterKey?: string) => {
      if (!curl) throw new Error('the README command is missing');
      const headers = Object.fromEntries(
        Object.entries(curl.headers).map(([name, value]) => [name, substitute(value, masterKey)]),
      );
      return send(curl.method, curl.path, headers, curl.body);
    };

    // The commands send the body their row names.
    for (const curl of curls) {
      const keys = Object.keys(JSON.parse(curl.body ?? '{}') as object);
      expect({ curl: curl.path, keys }).toEqual({
        curl: curl.path,
        keys: row(curl.method, curl.path)?.request,
      });
    }
    const registered = await run(curls[0]);
    expectRow(row('POST', '/api/v1/applications/register'), registered);
    const key = String(registered.body.master_key);
    const started = await run(curls[1], key);
    expectRow(row('POST', '/api/v1/onboarding/start'), started);
    const uuid = String(started.body.uuid);
    const json = { 'x-master-key': key, 'content-type': 'application/json' };

    const provisioned = await send(
      'POST',
      '/api/v1/onboarding/provision',
      json,
      JSON.stringify({ uuid, generate_api_key: true }),
    );
    expectRow(row('POST', '/api/v1/onboarding/provision'), provisioned);
    expect(provisioned.body.api_secret).toMatch(/^as_/);
    const credentials = {
      apiKey: String(provisioned.body.api_key),
      apiSecret: String(provisioned.body.api_secret),
    };
    expectRow(
      row('GET', '/api/v1/onboarding/status/{uuid}'),
      await send('GET', `/api/v1/onboarding/status/${uuid}`, { 'x-master-key': key }),
    );

    const hook = JSON.stringify({ url: 'https://erp.example.com/onramp', events: ['onboarding.completed'] });
    const created = await signed(credentials, 'POST', '/api/v1/webhooks', hook);
    expectRow(row('POST', '/api/v1/webhooks'), created);
    const listed = await signed(credentials, 'GET', '/api/v1/webhooks');
    expectRow(row('GET', '/api/v1/webhooks'), listed);
    const listedRow = row('GET', '/api/v1/webhooks');
    const [first] = listed.body.webhooks as Record<string, unknown>[];
    expect(Object.keys(listedRow?.items.webhooks ?? {})).toContain('url');
    expectRow(
      { ...(listedRow as RouteRow), fields: listedRow?.items.webhooks ?? {} },
      {
        status: listed.status,
        body: first ?? {},
      },
    );

    const completion = JSON.stringify({ tenant_id: `tenant_${randomUUID()}`, metadata: { users_count: 1 } });
    expectRow(
      row('POST', '/api/v1/onboarding/{uuid}/complete'),
      await send('POST', `/api/v1/onboarding/${uuid}/complete`, json, completion),
    );
    expectRow(
      row('DELETE', '/api/v1/webhooks/{id}'),
      await signed(credentials, 'DELETE', `/api/v1/webhooks/${String(created.body.id)}`),
    );
  });

  it('fail when the README is wrong: a field the answer lacks, another status or value', () => {
    const wrong = {
      method: 'POST',
      path: '/x',
      status: 201,
      fields: { success: undefined, app_key: undefined },
      items: {},
      request: [],
    };
    expect(() => expectRow(wrong, { status: 201, body: { success: true, app_key: 'a' } })).not.toThrow();
    expect(() => expectRow(wrong, { status: 201, body: { success: true, app_id: 'a' } })).toThrow();
    expect(() => expectRow(wrong, { status: 200, body: { success: true, app_key: 'a' } })).toThrow();
    const pending = { ...wrong, fields: { onboarding_status: 'pending' } };
    expect(() => expectRow(pending, { status: 201, body: { onboarding_status: 'activated' } })).toThrow();
  });
});

describe("the README's SQL for pnpm db:psql", () => {
  const statements = shellCommands()
    .concat([...README.matchAll(/`(pnpm db:psql -c '[^'`]+')`/g)].map((match) => match[1] ?? ''))
    .filter((line) => line.startsWith('pnpm db:psql -c '))
    .map((line) => words(line)[3] ?? '');

  it('are found', () => {
    expect(statements.length).toBeGreaterThan(0);
  });

  it('each runs on the central database (a registered clinic in it)', async () => {
    await createClinic(t);
    for (const sql of statements) {
      const rows = await t.app.deps.db.prisma
        .$queryRawUnsafe<unknown[]>(sql)
        .catch((error: Error) => error.message);
      expect({ sql, rows: Array.isArray(rows) ? 'rows' : rows }).toEqual({ sql, rows: 'rows' });
    }
  });
});
