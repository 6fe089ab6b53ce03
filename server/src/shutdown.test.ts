/**
 * Ctrl-C and SIGTERM stop the server in order — stop accepting, drain, stop the job worker, then
 * the database — quietly: exit code 0, no WARN or ERROR line, no stack trace (issue 15 item 11).
 * A real server process with its own embedded PostgreSQL, signalled as a terminal would.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../test/harness.js';
import { REGISTER, registrationInput } from '../test/registration-flow.js';
import { type ServerProcess, startServerProcess } from '../test/server-process.js';

const servers: ServerProcess[] = [];
afterEach(() => Promise.all(servers.splice(0).map((server) => server.stop())));

async function busyServer(): Promise<ServerProcess> {
  const server = await startServerProcess({ ONRAMP_DATA_DIR: tempDir('onramp-shutdown-') });
  servers.push(server);
  // Work for every part that stops: a registration (provisioning, its e-mail job for the worker).
  const response = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: REGISTER, variables: { input: registrationInput() } }),
  });
  expect(await response.json()).toMatchObject({ data: { registerClinic: { status: 'READY' } } });
  return server;
}

const noisyLines = (output: string) =>
  output.split('\n').filter((line) => /\b(WARN|ERROR|FATAL)\b|^\s+at /.test(line));

describe('stopping the server', () => {
  it('on Ctrl-C (SIGINT to the whole process group) exits 0 without a warning, an error or a stack trace', async () => {
    const server = await busyServer();
    const { code } = await server.interrupt();
    const output = server.stdout() + server.stderr();
    expect({ code, noisy: noisyLines(output) }).toEqual({ code: 0, noisy: [] });
    expect(output).toMatch(/embedded PostgreSQL stopped[\s\S]*Onramp stopped/);
  }, 120_000);

  it('on SIGTERM exits 0 as quietly', async () => {
    const server = await busyServer();
    await server.stop();
    const output = server.stdout() + server.stderr();
    expect({ code: server.child.exitCode, noisy: noisyLines(output) }).toEqual({ code: 0, noisy: [] });
  }, 120_000);
});
