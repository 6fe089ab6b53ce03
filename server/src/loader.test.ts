import { describe, expect, it } from 'vitest';
import { batchLoad } from './loader.js';

describe('batchLoad', () => {
  it('loads the keys of one scope in one call, however many promise hops each caller took', async () => {
    const calls: string[][] = [];
    const load = async (keys: string[]) => {
      calls.push(keys);
      return new Map(keys.filter((key) => key !== 'missing').map((key) => [key, key.toUpperCase()]));
    };
    const scope = {};
    const hops = async (depth: number, key: string): Promise<string | undefined> => {
      for (let i = 0; i < depth; i++) await Promise.resolve();
      return batchLoad(scope, 'letters', key, load);
    };
    const values = await Promise.all([hops(0, 'a'), hops(5, 'b'), hops(20, 'a'), hops(2, 'missing')]);
    expect(values).toEqual(['A', 'B', 'A', undefined]);
    expect(calls.map((keys) => [...keys].sort())).toEqual([['a', 'b', 'missing']]);
    // Cached per scope; another scope loads again.
    expect(await batchLoad(scope, 'letters', 'b', load)).toBe('B');
    expect(calls).toHaveLength(1);
    expect(await batchLoad({}, 'letters', 'b', load)).toBe('B');
    expect(calls).toHaveLength(2);
  });

  it('rejects every waiting key when the load fails', async () => {
    const scope = {};
    const failing = async () => {
      throw new Error('database down');
    };
    const results = await Promise.allSettled([
      batchLoad(scope, 'x', '1', failing),
      batchLoad(scope, 'x', '2', failing),
    ]);
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected']);
  });
});
