/**
 * One owner per embedded PostgreSQL (issue 11): other Onramp processes on the same data dir join
 * the owner's server or refuse, never stop, restart or re-port it; a dead owner's server is
 * adopted. Real server processes, real `pnpm clinics:migrate`.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { tempDir, testLogger } from '../../test/harness.js';
import { REGISTER, registrationInput } from '../../test/registration-flow.js';
import { type ServerProcess, startServerProcess as startServer } from '../../test/server-process.js';
import { EMBEDDED_CENTRAL_DATABASE } from './database.js';
import { startEmbeddedPostgres } from './embedded.js';
import { REPO_ROOT } from './paths.js';
import { isAlive } from './postgres-process.js';
import { databaseUrl, withClient } from './sql.js';

const servers: ServerProcess[] = [];
afterEach(() => Promise.all(servers.splice(0).map((server) => server.stop())));
async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const server = await startServer(env);
  servers.push(server);
  return server;
}

const postmasterPid = (dataDir: string) =>
  Number(readFileSync(join(dataDir, 'postgres', 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);

const owner = (dataDir: string) =>
  JSON.parse(readFileSync(join(dataDir, 'postgres', 'owner.json'), 'utf8')) as { pid: number; port: number };

async function run(command: string, args: string[], env: Record<string, string>, cwd = REPO_ROOT) {
  const child = spawn(command, args, {
    cwd,
    env: { PATH: process.env.PATH ?? '', NO_COLOR: '1', LOG_LEVEL: 'info', DNS_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  return { code, out };
}

async function register(url: string, input = registrationInput()) {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: REGISTER, variables: { input } }),
  });
  const body = (await response.json()) as { data: { registerClinic: { status?: string; code?: string } } };
  return body.data.registerClinic;
}

async function registered(url: string, input = registrationInput()) {
  expect(await register(url, input)).toMatchObject({ status: 'READY' });
  return input;
}

const answers = async (url: string) =>
  (await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ health { status } }' }),
  }).then((r) => r.json())) as unknown;

describe('pnpm clinics:migrate while pnpm start runs on the same data dir', () => {
  it('leaves the running server and its PostgreSQL alone and migrates its clinics', async () => {
    const dataDir = tempDir('onramp-owner-');
    const server = await startServerProcess({ ONRAMP_DATA_DIR: dataDir });
    const input = await registered(server.url);
    const pid = postmasterPid(dataDir);
    const { port } = owner(dataDir);
    // A row in the clinic's own database before, read back after.
    const { password } = JSON.parse(readFileSync(join(dataDir, 'postgres', 'embedded.json'), 'utf8')) as {
      password: string;
    };
    const central = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${EMBEDDED_CENTRAL_DATABASE}`;
    const clinic = await withClient(central, async (client) => {
      const { rows } = await client.query<{ id: string; database_name: string }>(
        'SELECT c.id::text, c.database_name FROM clinics c JOIN users u ON u.clinic_id = c.id WHERE u.email = $1',
        [input.adminEmail],
      );
      return rows[0] as { id: string; database_name: string };
    });
    const clinicDatabase = databaseUrl(inject('pgAdminUrl'), clinic.database_name);
    await withClient(clinicDatabase, (client) =>
      client.query(
        "INSERT INTO healthcare_providers (first_name, last_name, email) VALUES ('Kept', 'Across migrate', 'kept@example.com')",
      ),
    );

    const migrate = await run('pnpm', ['-s', 'clinics:migrate'], {
      ONRAMP_DATA_DIR: dataDir,
      CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
    });
    expect(migrate).toMatchObject({ code: 0 });
    // The command reached the running server's clinics through its PostgreSQL: the clinic is on the
    // current schema, so its rollout completes with nothing behind (rollouts/cli.test upgrades some).
    expect(migrate.out).toMatch(
      /clinic databases: 0 in the rollout, 0 upgraded, 0 failed, 0 remaining \(COMPLETED\)/,
    );
    expect(migrate.out).toMatch(/connecting to it as a client/);

    expect(postmasterPid(dataDir)).toBe(pid);
    expect(owner(dataDir)).toMatchObject({ pid: server.child.pid, port });
    expect(await answers(server.url)).toEqual({ data: { health: { status: 'OK' } } });
    await registered(server.url);
    expect(server.stdout() + server.stderr()).not.toMatch(/ECONNREFUSED|terminating connection/);
    // The clinic is HEALTHY, seen by the running server, and its row is there.
    const token = await run('pnpm', ['-s', 'admin:token'], {
      ONRAMP_DATA_DIR: dataDir,
      CLINIC_DATABASE_SERVERS: inject('pgAdminUrl'),
      LOG_LEVEL: 'error',
    });
    expect(token.code).toBe(0);
    const bearer = /eyJ[\w-]+\.[\w-]+\.[\w-]+/.exec(token.out)?.[0];
    const health = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ query: `{ clinic(id: "${clinic.id}") { health { dbStatus } } }` }),
    }).then((r) => r.json());
    expect(health).toEqual({ data: { clinic: { health: { dbStatus: 'HEALTHY' } } } });
    const rows = await withClient(clinicDatabase, async (client) => {
      const { rows: found } = await client.query(
        "SELECT 1 FROM healthcare_providers WHERE last_name = 'Across migrate'",
      );
      return found.length;
    });
    expect(rows).toBe(1);
  }, 180_000);
});

describe('a second pnpm start on the same data dir', () => {
  it('refuses, naming the process that owns the database, and does not disturb it', async () => {
    const dataDir = tempDir('onramp-owner-');
    const first = await startServerProcess({ ONRAMP_DATA_DIR: dataDir });
    const pid = postmasterPid(dataDir);

    const second = await run(
      process.execPath,
      ['--import', 'tsx', resolve(REPO_ROOT, 'server/src/main.ts')],
      { ONRAMP_DATA_DIR: dataDir, PORT: '0', CLINIC_DATABASE_SERVERS: inject('pgAdminUrl') },
      resolve(REPO_ROOT, 'server'),
    );
    expect(second.code).toBe(1);
    expect(second.out).toContain(`belongs to another running Onramp process: pid ${first.child.pid}`);
    expect(second.out).toContain('server/src/main.ts');
    expect(second.out).not.toMatch(/\n\s+at /); // a message, not a stack trace

    expect(postmasterPid(dataDir)).toBe(pid);
    expect(await answers(first.url)).toEqual({ data: { health: { status: 'OK' } } });
  }, 120_000);
});

describe('a start after the owner was SIGKILLed', () => {
  it('adopts the PostgreSQL it left running, with its data, and stops it on exit', async () => {
    const dataDir = tempDir('onramp-owner-');
    const first = await startServerProcess({ ONRAMP_DATA_DIR: dataDir });
    const input = await registered(first.url);
    const pid = postmasterPid(dataDir);
    first.child.kill('SIGKILL');
    await first.stop();
    expect(isAlive(pid)).toBe(true); // orphaned, still running

    const second = await startServerProcess({ ONRAMP_DATA_DIR: dataDir });
    expect(postmasterPid(dataDir)).toBe(pid);
    expect(owner(dataDir).pid).toBe(second.child.pid);
    expect(second.stdout()).toMatch(/adopting the embedded PostgreSQL/);
    const response = await fetch(`${second.url}/readyz`);
    expect(response.status).toBe(200);
    // The admin registered before the crash is still there: the same e-mail is taken.
    expect(await register(second.url, input)).toMatchObject({ code: 'EMAIL_TAKEN' });

    await second.stop();
    expect(second.child.exitCode).toBe(0);
    expect(isAlive(pid)).toBe(false);
  }, 120_000);
});

describe('a saved port taken by another program', () => {
  it('says so, naming the port and what to do, and starts on another one', async () => {
    const dir = tempDir('onramp-owner-pg-');
    const lines: string[] = [];
    const logger = testLogger({ env: 'test', logLevel: 'warn' }, lines);
    const first = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
    const saved = Number(new URL(first.url).port);
    await first.stop();

    const squatter = createServer();
    await new Promise<void>((done) => squatter.listen(saved, '127.0.0.1', done));
    try {
      const second = await startEmbeddedPostgres({ dir, logger, ephemeral: true });
      const port = Number(new URL(second.url).port);
      await second.stop();
      expect(port).not.toBe(saved);
      expect(lines.join('')).toContain(`port ${saved} of the embedded PostgreSQL`);
      expect(lines.join('')).toContain(`starting on port ${port} instead`);
      expect(JSON.parse(readFileSync(join(dir, 'embedded.json'), 'utf8')).port).toBe(port);
    } finally {
      squatter.close();
    }
  }, 60_000);
});
