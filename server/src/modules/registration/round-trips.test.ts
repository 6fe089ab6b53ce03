/**
 * What one registration sends to the central PostgreSQL, pool warm (issue 16, decision 060):
 * statements and commits, counted on the pg clients of the central database inside the
 * registration's own async context, so the app's background work (job polling, the warm pool's
 * refill started elsewhere) is not counted. The ceilings are the figures measured: a step whose
 * record stops being written with its neighbour's, or with its own transaction, fails them.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { CURRENT_ACCEPTANCES } from '../../../test/registration-flow.js';
import { countStatements, describeTally, type Tally } from '../../../test/statements.js';
import type { Acceptance } from '../consents/service.js';

describe('round trips of one registration', async () => {
  const t = await startTestApp();
  const counter = countStatements(new URL(t.config.databaseUrl ?? '').pathname.slice(1));
  afterAll(() => counter.restore());

  let n = 0;
  async function registerCounted(): Promise<Tally> {
    n += 1;
    const { value: registered, tally } = await counter.count(() =>
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

  it('sends at most the measured statements and commits, pool warm, with the pool busy', async () => {
    await registerCounted(); // warm: sessions, spares, caches
    await t.app.deps.provisioning.pool.idle();
    // Other work on the app's pool meanwhile, as in production: a busy pool must not move the
    // count (test/statements.ts says why it did).
    let noisy = true;
    const noise = counter.outside(() =>
      Promise.all(
        Array.from({ length: 12 }, async () => {
          while (noisy) await t.app.deps.db.prisma.$queryRaw`SELECT 1 FROM pg_sleep(0.002)`;
        }),
      ),
    );
    const tally = await registerCounted().finally(() => {
      noisy = false;
    });
    // The verification mail the registration sends after its commit (decision 075) is its own
    // work, started in its context: counted once it has ended, whatever the machine's speed.
    await t.app.deps.committedMail.idle();
    await noise;
    // ROUND_TRIPS_OUT=<file>: what was sent, for the bench README and decision 060.
    if (process.env.ROUND_TRIPS_OUT) writeFileSync(process.env.ROUND_TRIPS_OUT, `${describeTally(tally)}\n`);
    // Measured: 73 statements and 47 commits before decision 060, 62 and 36 after: a step's
    // outcome event and the next step's start are one NOTIFY statement; dns and ssl use the
    // subdomain the run reserved instead of reading it back. 54 and 31 after decision 063:
    // central_records, subdomain and commit record themselves in their own transactions, the last
    // step's record and the run's outcome are one statement, the built-in DNS provider publishes
    // in one statement (a 5-statement transaction before), the ledger records a new database and
    // role in one (a read and an insert before), the subdomain step does not look for a
    // reservation of a clinic its own run created, and a new name's certificate revokes nothing.
    // Those figures counted the event publications (10 of them, 11 with the pool busy); the
    // registration's own statements and commits are 44 and 21.
    // 40 after decision 074: the company and its clinic, the admin and its consents, the
    // verification link and its mail are one statement each, the clinic's READY and the ledger's
    // settling one. Decision 075: 42 and 23, the verification mail's claim and record (two
    // statements, each its own commit, through pg), which a job worker sent before, with
    // graphile-worker's fetch and completion. 41 since a free subdomain is reserved in one
    // statement (a look at what is taken, then the insert, before). 37 since a new name's
    // certificate is saved by one insert the partial unique index guards (its transaction, lock
    // and second look, five statements, before; they stay for a name that has one). 36 and 22
    // since the address's and everyone's registration limits are counted in one statement.
    expect(tally.statements, describeTally(tally)).toBeLessThanOrEqual(36);
    expect(tally.commits, describeTally(tally)).toBeLessThanOrEqual(22);
    // Decision 070: every statement outside a transaction goes through pg beside Prisma's engine
    // (db/raw.ts); what is left through the engine is the four step transactions (central_records,
    // subdomain, the certificate's save, commit), 27 statements with their BEGIN and COMMIT. 44
    // before.
    // Decision 074: the four step transactions run on one pg client of the pool (db/raw.ts
    // `transaction`) and their hooks write SQL: nothing of a registration goes through the engine.
    expect(tally.viaEngine, describeTally(tally)).toBe(0);
  });
});
