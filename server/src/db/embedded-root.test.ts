/**
 * As root, the embedded PostgreSQL starts from a data dir under a directory only root may enter
 * (`/root`, `mktemp -d`), which the `postgres` user it runs as cannot traverse (issue 15 item 0).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { afterFile } from '../../test/harness.js';
import { startServerProcess } from '../../test/server-process.js';
import { SYSTEM_DIR } from './postgres-process.js';

const root = process.getuid?.() === 0;

describe('as root, a data dir under a 0700 directory', () => {
  it('starts the server, its cluster in a directory the postgres user owns, recorded in the data dir', async (context) => {
    if (!root) context.skip('needs root: the case is PostgreSQL running as the postgres user for root');
    const parent = mkdtempSync(join(tmpdir(), 'onramp-private-'));
    expect(statSync(parent).mode & 0o777).toBe(0o700);
    afterFile(() => rmSync(parent, { recursive: true, force: true }));
    const dataDir = join(parent, 'data');

    const server = await startServerProcess({ ONRAMP_DATA_DIR: dataDir });
    const { clusterDir, port } = JSON.parse(readFileSync(join(dataDir, 'postgres', 'embedded.json'), 'utf8'));
    try {
      expect(clusterDir).toMatch(new RegExp(`^${SYSTEM_DIR}/clusters/[0-9a-f]{16}$`));
      expect(server.stdout()).toContain(`the postgres user cannot reach ${join(dataDir, 'postgres')}`);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      // Its Unix socket beside the cluster, where the postgres user may create it (decision 069).
      expect(existsSync(join(`${clusterDir}-socket`, `.s.PGSQL.${port}`))).toBe(true);
      expect(statSync(parent).mode & 0o777).toBe(0o700); // left as it was
    } finally {
      await server.stop();
      rmSync(clusterDir, { recursive: true, force: true });
      rmSync(`${clusterDir}-socket`, { recursive: true, force: true });
    }
    expect(server.child.exitCode).toBe(0);
  }, 120_000);
});
