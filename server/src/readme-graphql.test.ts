/**
 * The GraphQL `curl` commands of the README, sent as written: a reader of "The first ten minutes"
 * pastes them into a terminal, so each must answer as the README says it does.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startTestApp } from '../test/harness.js';
import { REPO_ROOT } from './db/paths.js';

const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });

/** The body (`-d '…'`) of every `curl … localhost:4000/graphql` command of the README. */
function readmeBodies(): string[] {
  const readme = readFileSync(resolve(REPO_ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/curl -s localhost:4000\/graphql [^\n]*?-d '([^'\n]+)'/g)].map(
    (match) => match[1] ?? '',
  );
}

async function send(body: string) {
  const response = await fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return { status: response.status, json: (await response.json()) as { data?: unknown; errors?: unknown[] } };
}

describe("the README's GraphQL commands", () => {
  const bodies = readmeBodies();

  it('are found (the registration of step 4 and the health check)', () => {
    expect(bodies.some((body) => body.includes('registerClinic'))).toBe(true);
    expect(bodies.some((body) => body.includes('health'))).toBe(true);
  });

  it('each answers 200 without errors', async () => {
    for (const body of bodies) {
      const { status, json } = await send(body);
      // No GraphQL error, and no typed one either (`… on Error { message }` in the selection).
      const typedError = /"__typename":"[A-Za-z]*Error"/.exec(JSON.stringify(json.data))?.[0];
      expect({ body, status, errors: json.errors, typedError }).toEqual({ body, status: 200 });
    }
  });

  it('step 4 registers the clinic, READY, as it says', async () => {
    const registration = bodies.find((body) => body.includes('registerClinic')) ?? '';
    const changed = registration.replace('marie@example.com', 'marie.step4@example.com');
    const { json } = await send(changed.replace('Clinique du Lac', 'Clinique du Lac Step Four'));
    expect(json.data).toEqual({
      registerClinic: {
        __typename: 'RegisterClinicSuccess',
        status: 'READY',
        clinic: { subdomain: 'clinique-du-lac-step-four' },
      },
    });
    // What the README says curl prints ("It answers `{…,…}`"): the start of the real answer.
    const readme = readFileSync(resolve(REPO_ROOT, 'README.md'), 'utf8');
    const stated = /It answers\s+`(\{[^`]*)…\}*`/.exec(readme)?.[1];
    expect(stated).toBeDefined();
    expect(JSON.stringify(json).startsWith(stated ?? '-')).toBe(true);
  });
});
