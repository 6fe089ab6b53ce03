/**
 * Quarantine, not drop (docs/decisions/040, issue 11): what the ledger lists for a run that did
 * not commit is kept, renamed and closed, by exactly one sweep even when several instances sweep
 * at once; only the undo of a run that is still live drops what that run itself created.
 */
import { describe, expect, inject, it } from 'vitest';
import { startTestApp } from '../../../test/harness.js';
import { withClient } from '../../db/sql.js';
import { cloneDatabase, ensureRole } from './admin.js';
import { clinicSubject } from './engine/events.js';
import type { Step } from './engine/runner.js';
import { clinicRecord, type ProvisionState } from './steps.js';

const admin = inject('pgAdminUrl');

/** The databases of these names on the clinic server. */
async function databasesNamed(names: string[]): Promise<string[]> {
  return withClient(admin, async (client) => {
    const { rows } = await client.query<{ name: string }>(
      'SELECT datname AS name FROM pg_database WHERE datname = ANY($1) ORDER BY datname',
      [names],
    );
    return rows.map((row) => row.name);
  });
}

describe('quarantine of what uncommitted runs left', async () => {
  const t = await startTestApp({ CLINIC_POOL_SIZE: '0', CLINIC_HEALTH_INTERVAL_SECONDS: '0' });
  const { provisioning, reconciler, db } = t.app.deps;
  const { prisma } = db;
  const { ledger } = provisioning;

  const newState = (name: string) => provisioning.newState({ clinicName: name, country: 'FR', admin: null });
  /** A REGISTER run of these steps, through the engine. */
  const registerWith = (state: ProvisionState, steps: Step<ProvisionState>[]) =>
    provisioning.run({ kind: 'REGISTER', steps }, clinicSubject(state.clinicId, state.clinicName), state);

  /** The clinic's central rows, as a registration's first step writes them. */
  const centralRecords: Step<ProvisionState> = {
    name: 'central_records',
    run: async (state) => {
      await prisma.company.create({
        data: { name: state.clinicName, clinics: { create: clinicRecord(state) } },
      });
      return undefined;
    },
    undo: async (state) => {
      await prisma.company.deleteMany({ where: { clinics: { some: { id: state.clinicId } } } });
    },
  };
  const createDatabase = () => {
    const step = provisioning.databaseSteps()[0];
    if (step?.name !== 'create_database') throw new Error('create_database is the first database step');
    return step;
  };
  const failing = (before?: (runId: string) => Promise<void>): Step<ProvisionState> => ({
    name: 'migrate_database',
    run: async (_state, { runId }) => {
      await before?.(runId);
      throw new Error('the step after create_database fails');
    },
  });

  /**
   * What a process killed between CREATE DATABASE and the commit leaves: a finished run, its
   * entries PENDING. The run is live (RUNNING under its lease) while its objects are made, as in
   * a real registration, so the app's own sweep cannot settle the entries before they exist.
   */
  const leftover = async (name: string) => {
    const state = await newState(name);
    const run = await prisma.provisioningRun.create({
      data: {
        clinicId: state.clinicId,
        kind: 'REGISTER',
        status: 'RUNNING',
        leaseUntil: new Date(Date.now() + 60_000),
      },
    });
    await ledger.record(
      {
        serverId: state.server.id,
        clinicId: state.clinicId,
        database: state.databaseName,
        role: state.roleName,
      },
      run.id,
    );
    await withClient(admin, async (client) => {
      await cloneDatabase(client, state.databaseName, state.server.template.name);
      await ensureRole(client, state.roleName, 'a password of the dead process');
    });
    await prisma.provisioningRun.update({
      where: { id: run.id },
      data: { status: 'FAILED', finishedAt: new Date(), leaseUntil: null },
    });
    return state;
  };

  it('two sweeps at once (two instances) quarantine each leftover once: listed, kept under its trash name', async () => {
    const states = await Promise.all(['Left A', 'Left B', 'Left C'].map(leftover));
    const names = states.map((state) => state.databaseName);
    await Promise.all([reconciler.reconcile(), reconciler.reconcile(), ledger.sweep()]);

    const entries = await prisma.clinicObject.findMany({
      where: { clinicId: { in: states.map((state) => state.clinicId) } },
    });
    expect(entries.map((entry) => entry.state)).toEqual(entries.map(() => 'QUARANTINED'));
    const quarantined = (await ledger.quarantined()).filter((entry) => names.includes(entry.name));
    expect(quarantined.map((entry) => entry.name).sort()).toEqual([...names].sort());
    const trash = quarantined.map((entry) => entry.trashName ?? '');
    expect(await databasesNamed(trash)).toEqual([...trash].sort());
    expect(await databasesNamed(names)).toEqual([]);
  });

  it('the undo of a live run drops what it created at once: strict mode leaves nothing', async () => {
    const state = await newState('Live undo');
    const result = await registerWith(state, [centralRecords, createDatabase(), failing()]);
    expect(result).toMatchObject({ ok: false, rolledBack: true });
    expect(await databasesNamed([state.databaseName])).toEqual([]);
    expect(await prisma.clinicObject.findMany({ where: { clinicId: state.clinicId } })).toMatchObject([
      { state: 'DROPPED' },
      { state: 'DROPPED' },
    ]);
  });

  it('the undo of a run another instance took over as abandoned (a frozen process) quarantines, never drops', async () => {
    const state = await newState('Taken over');
    // While the step runs, its run is claimed as another instance's reconciler claims a run whose
    // lease lapsed (its process was frozen): RUNNING under the reconciler's own lease, marked
    // abandoned (docs/decisions/058); the run is not live any more when its undo comes.
    const takenOver = failing(async (runId) => {
      await prisma.provisioningRun.update({
        where: { id: runId },
        data: {
          error: 'abandoned: its process stopped renewing the lease',
          leaseUntil: new Date(Date.now() + 60_000),
        },
      });
    });
    await registerWith(state, [centralRecords, createDatabase(), takenOver]);
    const [entry] = (await ledger.quarantined()).filter((kept) => kept.name === state.databaseName);
    expect(entry).toMatchObject({ clinicId: state.clinicId, kind: 'DATABASE' });
    expect(await databasesNamed([entry?.trashName ?? ''])).toEqual([entry?.trashName]);
  });

  it('the undo of a run that found its database from an earlier attempt quarantines it, never drops', async () => {
    // Hybrid mode: the first attempt created the database and was abandoned; a later attempt
    // takes its ledger entries over, finds the database and fails for good.
    const state = await leftover('Earlier attempt');
    await prisma.company.create({
      data: { name: state.clinicName, clinics: { create: clinicRecord(state) } },
    });
    await registerWith(state, [createDatabase(), failing()]);
    const [entry] = (await ledger.quarantined()).filter((kept) => kept.name === state.databaseName);
    expect(entry).toMatchObject({ clinicId: state.clinicId, kind: 'DATABASE' });
    expect(await databasesNamed([entry?.trashName ?? ''])).toEqual([entry?.trashName]);
  });
});
