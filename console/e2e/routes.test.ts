/**
 * No console page may sit where the server answers itself: a reload or a bookmark of a console
 * page must bring back the console (it used to show Prometheus' text at /metrics).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestApp, tempDir } from '../../server/test/harness.js';
import { matchPath } from '../src/app/router';
import { CONSOLE_PATHS, SERVER_ROUTES } from '../src/app/routes';

const MARKER = '<title>Onramp console (routes test)</title>';
const consoleDir = tempDir('onramp-console-routes-');
writeFileSync(join(consoleDir, 'index.html'), `<!doctype html>${MARKER}<div id="root"></div>`);

/** A concrete path for a pattern: `/clinics/:id` → `/clinics/<uuid>`. */
const concrete = (pattern: string) => pattern.replace(/:[^/]+/g, '5f0c9a2e-3b7d-4c1e-9f6a-2d8b7e4c1a90');

const shadows = (consolePath: string, serverRoute: string) =>
  consolePath === serverRoute ||
  consolePath.startsWith(`${serverRoute}/`) ||
  matchPath(consolePath, serverRoute) !== null;

describe('console routes and server routes', async () => {
  const t = await startTestApp(
    { CLINIC_HEALTH_INTERVAL_SECONDS: '0', CLINIC_POOL_SIZE: '0' },
    { consoleDir },
  );

  it('share no path', () => {
    const overlaps = CONSOLE_PATHS.flatMap((path) =>
      SERVER_ROUTES.filter((route) => shadows(path, route)).map((route) => `${path} shadows ${route}`),
    );
    expect(overlaps).toEqual([]);
    expect(CONSOLE_PATHS).toContain('/verify-email');
    expect(CONSOLE_PATHS).toContain('/sign-in');
  });

  it('serves the console on a reload of every console page', async () => {
    for (const pattern of CONSOLE_PATHS) {
      const path = concrete(pattern);
      const response = await fetch(`${t.url}${path}`, {
        headers: { accept: 'text/html,application/xhtml+xml' },
      });
      expect({ path, status: response.status, console: (await response.text()).includes(MARKER) }).toEqual({
        path,
        status: 200,
        console: true,
      });
    }
  });

  it('leaves every server route to the server', async () => {
    for (const route of SERVER_ROUTES) {
      const path = route === '/api' ? '/api/v1/openapi.json' : route;
      const response = await fetch(`${t.url}${path}`, { headers: { accept: 'text/html' } });
      expect({ path, console: (await response.text()).includes(MARKER) }).toEqual({ path, console: false });
    }
    const metrics = await fetch(`${t.url}/metrics`, { headers: { accept: 'text/html' } });
    expect(await metrics.text()).toContain('# HELP');
  });
});
