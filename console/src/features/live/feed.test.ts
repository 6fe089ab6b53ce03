import { describe, expect, it } from 'vitest';
import { applyEvent, type FeedRun, type ProvisioningEvent } from './feed';

const event = (step: string, status: ProvisioningEvent['status'], extra: Partial<ProvisioningEvent> = {}) =>
  ({
    runId: 'run-1',
    clinicId: 'clinic-1',
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
  it('keeps one row per step with its latest status, and succeeds on commit', () => {
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
    const [done] = fold([event('commit', 'SUCCEEDED')], run ? [run] : []);
    expect(done?.status).toBe('SUCCEEDED');
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
});
