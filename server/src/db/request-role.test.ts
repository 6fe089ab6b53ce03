/**
 * Instances of a cluster start at once, and each makes sure the central database's request role
 * exists with its password (request-scope.ts): they must not trip over each other.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createTestDatabase } from '../../test/harness.js';
import { ensureRequestRole, requestRoleName } from './request-scope.js';

describe('the request role', () => {
  it('is ensured by many starting instances at once', async () => {
    const url = await createTestDatabase('request_role');
    const database = new URL(url).pathname.slice(1);
    const clients = Array.from({ length: 8 }, () => new pg.Client({ connectionString: url }));
    await Promise.all(clients.map((client) => client.connect()));
    try {
      // Twice: creating it, then renewing its password and grant, both race.
      for (let round = 0; round < 2; round++) {
        const roles = await Promise.all(
          clients.map((client) => ensureRequestRole(client, database, 'ab'.repeat(32))),
        );
        expect(new Set(roles)).toEqual(new Set([requestRoleName(database)]));
      }
    } finally {
      await Promise.all(clients.map((client) => client.end()));
    }
  });
});
