import { describe, expect, it } from 'vitest';
import { sharedBarrier } from './barrier.js';

/** A round trip the test answers by hand. */
function manual() {
  const pending: ((delivered: boolean) => void)[] = [];
  const barrier = sharedBarrier(() => new Promise<boolean>((resolve) => pending.push(resolve)));
  return { barrier, pending };
}

const turn = () => new Promise((done) => setImmediate(done));

describe('a shared barrier', () => {
  it('queues the callers arriving during a round trip behind it, all on one more round trip', async () => {
    const { barrier, pending } = manual();
    const first = barrier();
    const during = [barrier(), barrier(), barrier()];
    expect(pending).toHaveLength(1);
    let settled = false;
    void Promise.all(during).then(() => {
      settled = true;
    });
    pending[0]!(true);
    expect(await first).toBe(true);
    await turn();
    // The one in flight may have been read by the server before they came: not theirs.
    expect(settled).toBe(false);
    expect(pending).toHaveLength(2);
    const later = barrier(); // during the second: queued for a third
    pending[1]!(false);
    expect(await Promise.all(during)).toEqual([false, false, false]);
    await turn();
    expect(pending).toHaveLength(3);
    pending[2]!(true);
    expect(await later).toBe(true);
  });

  it('starts a round trip at once when none is in flight', async () => {
    const { barrier, pending } = manual();
    const one = barrier();
    pending[0]!(true);
    await one;
    await turn();
    const two = barrier();
    expect(pending).toHaveLength(2);
    pending[1]!(true);
    expect(await two).toBe(true);
  });
});
