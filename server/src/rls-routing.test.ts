/**
 * Resolvers read and write clinic-scoped central tables through the request connection
 * (row-level security, decision 011 and 019), never the owner's:
 * - statically: no resolver source touches a clinic-scoped model (the tables whose row-level
 *   security the migrations force) through `deps.db.prisma`; a new resolver doing so fails here
 *   until it uses `context.scoped` or joins the commented exceptions below;
 * - at run time: with the request role's privileges on those tables revoked, the routed
 *   operations stop working (so they depend on that connection), and work again once restored.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { clinicWithAdmin, REGISTER, registrationInput } from '../test/registration-flow.js';
import { REPO_ROOT } from './db/paths.js';
import { scopedRunner } from './db/request-scope.js';
import { withClient } from './db/sql.js';

const SERVER_SRC = join(REPO_ROOT, 'server/src');

/** Tables whose row-level security a central migration forces. */
function clinicScopedTables(): Set<string> {
  const dir = join(REPO_ROOT, 'prisma/central/migrations');
  const tables = new Set<string>();
  for (const migration of readdirSync(dir)) {
    const file = join(dir, migration, 'migration.sql');
    if (!statSync(join(dir, migration)).isDirectory()) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(
      /ALTER TABLE\s+"?(\w+)"?\s+FORCE ROW LEVEL SECURITY/gi,
    ))
      tables.add(match[1] as string);
  }
  return tables;
}

/** Prisma delegate names (`clientRecord`) of the models mapped to `tables`. */
function delegatesOf(tables: Set<string>): Set<string> {
  const schema = readFileSync(join(REPO_ROOT, 'prisma/central/schema.prisma'), 'utf8');
  const delegates = new Set<string>();
  for (const match of schema.matchAll(/^model (\w+) \{([\s\S]*?)^\}/gm)) {
    const table = /@@map\("(\w+)"\)/.exec(match[2] as string)?.[1];
    const model = match[1] as string;
    if (table && tables.has(table)) delegates.add(model.charAt(0).toLowerCase() + model.slice(1));
  }
  return delegates;
}

/** Source files that define GraphQL fields (resolvers), tests and generated code aside. */
function resolverFiles(dir = SERVER_SRC): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (entry === 'generated' || entry === 'scratch') continue;
    if (statSync(path).isDirectory()) files.push(...resolverFiles(path));
    else if (/\.ts$/.test(entry) && !/\.test\.ts$|test-support/.test(entry)) {
      const text = readFileSync(path, 'utf8');
      if (
        /builder\.(queryFields?|mutationFields?|subscriptionFields?|objectRef|prismaObject|objectType)\b/.test(
          text,
        ) ||
        entry === 'builder.ts'
      )
        files.push(path);
    }
  }
  return files;
}

/**
 * The owner connection in a resolver source, each with why: none of these touches a
 * clinic-scoped table. (Services called by resolvers that must stay on the owner connection are
 * listed, with their reasons, in docs/decisions/019.)
 */
const EXCEPTIONS: { file: string; line: RegExp; why: string }[] = [
  {
    file: 'modules/mail/schema.ts',
    line: /devMailbox\(context\.deps\.db\.prisma,/,
    why: 'the dev mailbox reads mail_outbox, which is not clinic data (and the request role may not read it)',
  },
  {
    file: 'modules/auth/sign-in-links-schema.ts',
    line: /new SignInLinks\(\{ config, prisma: db\.prisma \}\)\.consume\(token\)/,
    why: 'consuming a sign-in link is platform work for a caller not signed in yet, like password sign-in (decision 019); sign_in_links holds no clinic data',
  },
];

describe('resolvers and the owner connection', () => {
  const tables = clinicScopedTables();
  const delegates = delegatesOf(tables);

  it('knows the clinic-scoped tables from the migrations', () => {
    for (const table of [
      'companies',
      'clinics',
      'users',
      'client_records',
      'audit_log',
      'provisioning_runs',
      'provisioning_steps',
    ])
      expect(tables.has(table), table).toBe(true);
    expect(delegates).toContain('clientRecord');
    expect(delegates).toContain('auditLog');
  });

  it('no resolver touches a clinic-scoped table through deps.db.prisma', () => {
    const files = resolverFiles();
    expect(files.map((file) => relative(SERVER_SRC, file))).toEqual(
      expect.arrayContaining(['builder.ts', 'modules/provisioning/schema.ts', 'modules/auth/schema.ts']),
    );
    const offences: string[] = [];
    for (const file of files) {
      const name = relative(SERVER_SRC, file);
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((text, index) => {
          for (const use of text.matchAll(/\bdb\.prisma\b(\.(\$?\w+))?/g)) {
            const member = use[2];
            // A non-clinic delegate (applicationKey, onboarding, …) is fine; anything else is not:
            // a clinic-scoped model, raw SQL or a transaction, or the client handed on.
            if (member && !member.startsWith('$') && !delegates.has(member)) continue;
            if (EXCEPTIONS.some((exception) => exception.file === name && exception.line.test(text)))
              continue;
            offences.push(`${name}:${index + 1}: ${text.trim()}`);
          }
          // `const { prisma } = context.deps.db` would hide the owner client behind a name.
          if (/\{\s*[^}]*\bprisma\b[^}]*\}\s*=\s*[\w.]*deps\.db\b/.test(text))
            offences.push(`${name}:${index + 1}: ${text.trim()}`);
        });
    }
    expect(offences).toEqual([]);
  });

  it('the Pothos prisma plugin loads relations through the request connection', () => {
    const builder = readFileSync(join(SERVER_SRC, 'builder.ts'), 'utf8');
    expect(/client:\s*\(context\)\s*=>\s*context\.scoped\.client/.test(builder)).toBe(true);
  });
});

describe('the routed operations depend on the request connection', async () => {
  // Revoked privileges make the operations fail loudly on purpose: keep those errors out of the log.
  const t = await startTestApp({
    CLINIC_POOL_SIZE: '0',
    CLINIC_HEALTH_INTERVAL_SECONDS: '0',
    LOG_LEVEL: 'fatal',
  });
  const admin = await clinicWithAdmin(t);
  const operator = await t.superAdmin();

  const operations: [string, () => Promise<{ data?: unknown; errors?: unknown[] }>][] = [
    ['me', async () => (await t.gql('{ me { id clinic { id } } }', {}, admin.headers)).body],
    [
      'clinic',
      async () =>
        (
          await t.gql(
            'query ($id: ID!) { clinic(id: $id) { id name } }',
            { id: admin.clinic.id },
            admin.headers,
          )
        ).body,
    ],
    [
      'clinics',
      async () => (await t.gql('{ clinics(first: 5) { edges { node { id } } } }', {}, operator)).body,
    ],
    [
      'provisioningRuns',
      async () => (await t.gql('{ provisioningRuns(first: 5) { id steps { name } } }', {}, operator)).body,
    ],
    [
      'provisioningMetrics',
      async () => (await t.gql('{ provisioningMetrics { successes } }', {}, operator)).body,
    ],
    [
      'auditLog',
      async () => (await t.gql('{ auditLog(first: 5) { edges { node { id } } } }', {}, admin.headers)).body,
    ],
    ['exportMyData', async () => (await t.gql('{ exportMyData }', {}, admin.headers)).body],
    [
      'registerClinic { clinic user }',
      async () => (await t.gql(REGISTER, { input: registrationInput() })).body,
    ],
  ];

  async function setPrivileges(grant: boolean) {
    await withClient(t.app.deps.db.centralUrl, (client) =>
      client.query(
        grant
          ? 'GRANT SELECT, INSERT, UPDATE, DELETE ON companies, clinics, users, client_records, audit_log, provisioning_runs, provisioning_steps TO onramp_app'
          : 'REVOKE SELECT ON clinics, users, audit_log, provisioning_runs TO onramp_app'.replace(
              ' TO ',
              ' FROM ',
            ),
      ),
    );
  }

  it('the client the plugin uses for relations is scoped too: each operation sees the viewer’s clinic only', async () => {
    const other = await clinicWithAdmin(t);
    const { requestPrisma } = t.app.deps.db;
    const scoped = scopedRunner(requestPrisma, {
      userId: admin.user.id,
      role: 'CLINIC_ADMIN',
      clinicId: admin.clinic.id,
    });
    const seen = await scoped.client.clinic.findMany({
      where: { id: { in: [admin.clinic.id, other.clinic.id] } },
    });
    expect(seen.map((clinic) => clinic.id)).toEqual([admin.clinic.id]);
    expect(await scoped.client.user.count({ where: { id: other.user.id } })).toBe(0);
  });

  it.each(operations)(
    '%s fails without the request role’s privileges, and works with them',
    async (_name, run) => {
      const ok = await run();
      expect(ok.errors).toBeUndefined();
      await setPrivileges(false);
      try {
        const refused = await run();
        expect(refused.errors?.length ?? 0).toBeGreaterThan(0);
      } finally {
        await setPrivileges(true);
      }
      expect((await run()).errors).toBeUndefined();
    },
  );
});
