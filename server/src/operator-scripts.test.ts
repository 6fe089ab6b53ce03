/**
 * The operator scripts of the README (issue 15 item 14), run as an operator runs them, from the
 * repository root beside a running `pnpm start` on the same data dir: `pnpm -s admin:token`
 * prints a super-admin bearer token on stdout alone; `pnpm db:psql` opens psql on the central
 * database, or says clearly that psql is missing; `pnpm clinics:restore` brings a deleted
 * clinic back from quarantine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { afterFile, runPnpm, tempDir } from '../test/harness.js';
import { REGISTER, registrationInput } from '../test/registration-flow.js';
import { startServerProcess } from '../test/server-process.js';

describe('operator scripts beside a running server', async () => {
  const dataDir = tempDir('onramp-scripts-');
  const env = { ONRAMP_DATA_DIR: dataDir, CLINIC_DATABASE_SERVERS: inject('pgAdminUrl') };
  const server = await startServerProcess(env);

  it('pnpm -s admin:token prints a super-admin bearer token, alone on stdout, that the server accepts', async () => {
    const { code, stdout, stderr } = await runPnpm(['-s', 'admin:token'], env);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = stdout.trim();
    const health = await fetch(`${server.url}/api/v1/admin/clinics/health`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(health.status).toBe(200);
    const anonymous = await fetch(`${server.url}/api/v1/admin/clinics/health`);
    expect(anonymous.status).toBe(401);
    // Never in a log: neither the script's stderr nor the server's output.
    expect(stderr + server.stdout() + server.stderr()).not.toContain(token);
  }, 60_000);

  it('pnpm db:psql runs psql on the central database over its Unix socket, passing its arguments', async () => {
    const { code, stdout } = await runPnpm(
      [
        '-s',
        'db:psql',
        '-At',
        '-c',
        "SELECT current_database(), count(*), inet_server_addr() IS NULL FROM users WHERE role = 'SUPER_ADMIN'",
      ],
      env,
    );
    expect({ code, stdout }).toMatchObject({ code: 0, stdout: expect.stringContaining('onramp|1|t') });
  }, 60_000);

  it('pnpm db:psql without psql says how to install it, without the password', async () => {
    // A PATH with what pnpm needs (sh, node, pnpm) and no psql.
    const bin = mkdtempSync(join(tmpdir(), 'onramp-nopsql-'));
    afterFile(() => rmSync(bin, { recursive: true, force: true }));
    for (const name of ['sh', 'node', 'pnpm']) {
      const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
      symlinkSync(found, join(bin, name));
    }
    const { code, stderr } = await runPnpm(['-s', 'db:psql', '-c', 'SELECT 1'], { ...env, PATH: bin });
    expect(code).not.toBe(0);
    expect(stderr).toContain('psql is not installed (Debian/Ubuntu: apt-get install postgresql-client)');
    expect(stderr).toContain('postgres://postgres:***@127.0.0.1:');
  }, 60_000);

  it('pnpm -s clinics:restore <clinicId> brings a deleted clinic back from quarantine, HEALTHY', async () => {
    const token = (await runPnpm(['-s', 'admin:token'], env)).stdout.trim();
    const gql = async (query: string, variables?: Record<string, unknown>) =>
      (await fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
      }).then((r) => r.json())) as { data?: Record<string, Record<string, unknown>> };
    const registered = await gql(REGISTER, { input: registrationInput() });
    const clinicId = (registered.data?.registerClinic?.clinic as { id: string } | undefined)?.id as string;
    expect(clinicId).toMatch(/^[0-9a-f-]{36}$/);
    const deleted = await gql(`mutation { deleteClinic(clinicId: "${clinicId}") { __typename } }`);
    expect(deleted.data?.deleteClinic).toEqual({ __typename: 'DeleteClinicSuccess' });

    const { code, stdout } = await runPnpm(['-s', 'clinics:restore', clinicId], env);
    expect({ code, stdout }).toMatchObject({
      code: 0,
      stdout: expect.stringContaining(`clinic ${clinicId} restored`),
    });
    const health = await gql(`{ clinic(id: "${clinicId}") { status health { dbStatus } } }`);
    expect(health.data?.clinic).toEqual({ status: 'READY', health: { dbStatus: 'HEALTHY' } });
    // Nothing left to restore: a clear refusal, exit code 1.
    const again = await runPnpm(['-s', 'clinics:restore', clinicId], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/quarantined database/);
  }, 120_000);
});
