import { describe, expect, it } from 'vitest';
import { applyEvent, type FeedRun, mergeSnapshot, type ProvisioningEvent, type RunSnapshot } from './feed';

const event = (step: string, status: ProvisioningEvent['status'], extra: Partial<ProvisioningEvent> = {}) =>
  ({
    runId: 'run-1',
    kind: 'REGISTER',
    clinicId: 'clinic-1',
    clinicName: 'Clinique du Lac',
    step,
    status,
    attempt: 1,
    message: null,
    at: '2026-11-22T10:00:00.000Z',
    durationMs: status === 'STARTED' ? null : 10,
    ...extra,
  }) as ProvisioningEvent;

const fold = (events: ProvisioningEvent[], runs: FeedRun[] = []) => events.reduce(applyEvent, runs);

describe('the live feed fold', () => {
  it('keeps one row per step with its latest status, and succeeds on the event that ends the run', () => {
    const [run] = fold([
      event('central_records', 'STARTED'),
      event('central_records', 'SUCCEEDED', { durationMs: 42 }),
      event('commit', 'STARTED'),
    ]);
    expect(run?.status).toBe('RUNNING');
    expect(run?.steps.map((s) => [s.name, s.status, s.durationMs])).toEqual([
      ['central_records', 'SUCCEEDED', 42],
      ['commit', 'STARTED', null],
    ]);
    const [committed] = fold([event('commit', 'SUCCEEDED')], run ? [run] : []);
    expect(committed?.status).toBe('RUNNING');
    const [done] = fold(
      [event('verification_email', 'SUCCEEDED', { runStatus: 'SUCCEEDED' })],
      committed ? [committed] : [],
    );
    expect(done?.status).toBe('SUCCEEDED');
  });

  it.each([
    ['MOVE', 'move_quarantine_source'],
    ['UPGRADE', 'verify_database'],
    ['DELETE', 'commit'],
    ['RESTORE', 'commit'],
    ['REPAIR', 'verify_database'],
  ] as const)('ends a %s run (last step %s) as its last event says', (kind, last) => {
    const [run] = fold([
      event(last, 'STARTED', { kind }),
      event(last, 'SUCCEEDED', { kind, runStatus: 'SUCCEEDED' }),
    ]);
    expect(run?.status).toBe('SUCCEEDED');
    const [undone] = fold([
      event('create_database', 'SUCCEEDED', { kind, runId: 'run-2' }),
      event(last, 'FAILED', { kind, runId: 'run-2', message: 'boom' }),
      event('create_database', 'ROLLED_BACK', { kind, runId: 'run-2', runStatus: 'ROLLED_BACK' }),
    ]);
    expect(undone).toMatchObject({ status: 'FAILED', error: `${last}: boom` });
  });

  it('marks a failed run FAILED and keeps the forward duration beside the undo', () => {
    const [run] = fold([
      event('create_database', 'SUCCEEDED', { durationMs: 80 }),
      event('seed_provider', 'FAILED', { message: 'boom' }),
      event('create_database', 'ROLLED_BACK', { durationMs: 5 }),
    ]);
    expect(run?.status).toBe('FAILED');
    expect(run?.steps.find((s) => s.name === 'create_database')).toMatchObject({
      status: 'ROLLED_BACK',
      durationMs: 80,
      rollbackMs: 5,
    });
    expect(run?.steps.find((s) => s.name === 'seed_provider')?.message).toBe('boom');
  });

  it('puts the run that moved last first, and keeps at most 50 runs', () => {
    const many = Array.from({ length: 60 }, (_, i) =>
      event('central_records', 'STARTED', { runId: `r${i}` }),
    );
    const runs = fold([...many, event('central_records', 'SUCCEEDED', { runId: 'r20' })]);
    expect(runs).toHaveLength(50);
    expect(runs[0]?.runId).toBe('r20');
    expect(runs[1]?.runId).toBe('r59');
  });

  it('does not change the runs it was given (safe in a React state updater)', () => {
    const before = fold([event('central_records', 'STARTED')]);
    const snapshot = structuredClone(before);
    fold([event('central_records', 'SUCCEEDED')], before);
    expect(before).toEqual(snapshot);
  });

  it('names a run from its first event', () => {
    const [run] = fold([event('central_records', 'STARTED')]);
    expect(run).toMatchObject({ clinicName: 'Clinique du Lac', kind: 'REGISTER', live: true });
  });

  it('keeps a run succeeded when a step after the commit fails', () => {
    const [run] = fold([
      event('commit', 'SUCCEEDED'),
      event('verification_email', 'FAILED', {
        at: '2026-11-22T10:00:01.000Z',
        message: 'smtp down',
        runStatus: 'SUCCEEDED',
      }),
    ]);
    expect(run?.status).toBe('SUCCEEDED');
  });

  it('never moves a step backwards on an older event', () => {
    const runs = fold([
      event('central_records', 'SUCCEEDED', { at: '2026-11-22T10:00:02.000Z' }),
      event('central_records', 'STARTED', { at: '2026-11-22T10:00:01.000Z' }),
    ]);
    expect(runs[0]?.steps.map((s) => s.status)).toEqual(['SUCCEEDED']);
  });
});

const snapshot = (extra: Partial<RunSnapshot> = {}): RunSnapshot => ({
  id: 'run-1',
  kind: 'REGISTER',
  clinicId: 'clinic-1',
  clinicName: 'Clinique du Lac',
  status: 'ROLLED_BACK',
  attempt: 1,
  error: 'seed_provider: boom',
  startedAt: '2026-11-22T10:00:00.000Z',
  finishedAt: '2026-11-22T10:00:03.000Z',
  steps: [
    {
      name: 'central_records',
      status: 'ROLLED_BACK',
      attempt: 1,
      error: null,
      startedAt: '2026-11-22T10:00:00.000Z',
      finishedAt: '2026-11-22T10:00:03.000Z',
      durationMs: 40,
    },
    {
      name: 'seed_provider',
      status: 'FAILED',
      attempt: 1,
      error: 'boom',
      startedAt: '2026-11-22T10:00:01.000Z',
      finishedAt: '2026-11-22T10:00:02.000Z',
      durationMs: 5,
    },
  ],
  ...extra,
});

describe('the recorded runs the feed opens with', () => {
  it('shows a recorded failed run with its error, folded (not seen live)', () => {
    const [run] = mergeSnapshot([], [snapshot()]);
    expect(run).toMatchObject({
      runId: 'run-1',
      clinicName: 'Clinique du Lac',
      status: 'FAILED',
      error: 'seed_provider: boom',
      live: false,
    });
    expect(run?.steps.map((s) => [s.name, s.status, s.message])).toEqual([
      ['central_records', 'ROLLED_BACK', null],
      ['seed_provider', 'FAILED', 'boom'],
    ]);
  });

  it('merges a record with live events of the same run, the newest news of each step winning', () => {
    const live = fold([
      event('central_records', 'SUCCEEDED', { at: '2026-11-22T10:00:00.500Z' }),
      event('create_database', 'STARTED', { at: '2026-11-22T10:00:04.000Z' }),
    ]);
    const running = snapshot({
      status: 'RUNNING',
      error: null,
      finishedAt: null,
      steps: [
        {
          name: 'central_records',
          status: 'SUCCEEDED',
          attempt: 1,
          error: null,
          startedAt: '2026-11-22T10:00:00.000Z',
          finishedAt: '2026-11-22T10:00:00.500Z',
          durationMs: 40,
        },
      ],
    });
    const [run, ...rest] = mergeSnapshot(live, [
      running,
      snapshot({
        id: 'run-0',
        startedAt: '2026-11-21T00:00:00.000Z',
        finishedAt: '2026-11-21T00:00:01.000Z',
        steps: [],
      }),
    ]);
    expect(run?.runId).toBe('run-1');
    expect(run?.live).toBe(true);
    expect(run?.status).toBe('RUNNING');
    expect(run?.steps.map((s) => `${s.name}:${s.status}`)).toEqual([
      'central_records:SUCCEEDED',
      'create_database:STARTED',
    ]);
    expect(rest.map((r) => r.runId)).toEqual(['run-0']);
  });
});
