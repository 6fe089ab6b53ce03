/**
 * What one registration sends to the central PostgreSQL, pool warm (issue 16, decision 060):
 * statements and commits, counted on the pg clients of the central database inside the
 * registration's own async context, so the app's background work (job polling, the warm pool's
 * refill started elsewhere) is not counted. The ceilings are the figures measured: a step whose
 * record stops being written with its neighbour's, or with its own transaction, fails them.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import type { Acceptance } from '../consents/service.js';

interface Tally {
  statements: number;
  commits: number;
  /** Clients inside a BEGIN … COMMIT. */
  open: Set<pg.Client>;
  texts: string[];
}

const counting = new AsyncLocalStorage<Tally>();
const original = pg.Client.prototype.query;
afterAll(() => {
  pg.Client.prototype.query = original;
});

describe('round trips of one registration', async () => {
  const t = await startTestApp();
  const central = new URL(t.config.databaseUrl ?? '').pathname.slice(1);
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const tally = counting.getStore();
    if (tally && this.database === central) {
      const first = args[0];
      const text = (typeof first === 'string' ? first : ((first as { text?: string }).text ?? '')).trim();
      const verb = text.split(/\s/, 1)[0]?.toUpperCase() ?? '';
      tally.statements += 1;
      tally.texts.push(text.slice(0, 80));
      if (verb === 'BEGIN') tally.open.add(this);
      else if (verb === 'COMMIT') {
        tally.open.delete(this);
        tally.commits += 1;
      } else if (verb === 'ROLLBACK') tally.open.delete(this);
      else if (!tally.open.has(this)) tally.commits += 1;
    }
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof original;

  let n = 0;
  async function registerCounted(): Promise<Tally> {
    n += 1;
    const tally: Tally = { statements: 0, commits: 0, open: new Set(), texts: [] };
    const registered = await counting.run(tally, () =>
      t.app.deps.registration.register(
        {
          clinicName: `Round Trip ${n}`,
          country: 'FR',
          adminEmail: `round-trip-${n}-${Date.now()}@example.com`,
          adminPassword: 'a sturdy passphrase 42',
          adminFirstName: 'Ada',
          adminLastName: 'Lovelace',
        },
        {
          ip: '127.0.0.1',
          acceptances: CURRENT_ACCEPTANCES as Acceptance[],
        },
      ),
    );
    expect(registered.status).toBe('READY');
    return tally;
  }

  it('sends at most the measured statements and commits, pool warm', async () => {
    await registerCounted(); // warm: sessions, spares, caches
    await t.app.deps.provisioning.pool.idle();
    const tally = await registerCounted();
    // ROUND_TRIPS_OUT=<file>: what was sent, for the bench README and decision 060.
    if (process.env.ROUND_TRIPS_OUT) {
      writeFileSync(
        process.env.ROUND_TRIPS_OUT,
        `${tally.statements} statements, ${tally.commits} commits\n${tally.texts.join('\n')}\n`,
      );
    }
    // Measured: 73 statements and 47 commits before decision 060, 62 and 36 after: a step's
    // outcome event and the next step's start are one NOTIFY statement; dns and ssl use the
    // subdomain the run reserved instead of reading it back. 54 and 31 after decision 063:
    // central_records, subdomain and commit record themselves in their own transactions, the last
    // step's record and the run's outcome are one statement, the built-in DNS provider publishes
    // in one statement (a 5-statement transaction before), the ledger records a new database and
    // role in one (a read and an insert before), the subdomain step does not look for a
    // reservation of a clinic its own run created, and a new name's certificate revokes nothing.
    expect(tally.statements).toBeLessThanOrEqual(54);
    expect(tally.commits).toBeLessThanOrEqual(31);
  });
});
