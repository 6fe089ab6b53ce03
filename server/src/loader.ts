/**
 * Per-request batching for list fields (the audit log's actors, the clinics table's admins): keys
 * asked for while one response is being built load in one query instead of one query per row.
 */

interface Batch<V> {
  results: Map<string, Promise<V | undefined>>;
  queued: Map<string, { resolve(value: V | undefined): void; reject(error: unknown): void }>;
}

const batches = new WeakMap<object, Map<string, Batch<unknown>>>();

/**
 * Loads `key` with every other key of the same `name` asked for on `scope` (a request context)
 * before the next macrotask; each key is loaded once per scope.
 * @param load resolves with the values it found; missing keys resolve to undefined.
 */
export function batchLoad<V>(
  scope: object,
  name: string,
  key: string,
  load: (keys: string[]) => Promise<Map<string, V>>,
): Promise<V | undefined> {
  let byName = batches.get(scope);
  if (!byName) {
    byName = new Map();
    batches.set(scope, byName);
  }
  let batch = byName.get(name) as Batch<V> | undefined;
  if (!batch) {
    batch = { results: new Map(), queued: new Map() };
    byName.set(name, batch as Batch<unknown>);
  }
  const known = batch.results.get(key);
  if (known) return known;
  const current = batch;
  const promise = new Promise<V | undefined>((resolve, reject) => {
    current.queued.set(key, { resolve, reject });
  });
  current.results.set(key, promise);
  if (current.queued.size === 1) {
    // A macrotask, not a microtask: resolvers of sibling rows reach here through different
    // numbers of promise hops, and all of them settle before the next macrotask.
    setImmediate(() => {
      const waiting = new Map(current.queued);
      current.queued.clear();
      load([...waiting.keys()]).then(
        (found) => {
          for (const [wanted, { resolve }] of waiting) resolve(found.get(wanted));
        },
        (error: unknown) => {
          for (const { reject } of waiting.values()) reject(error);
        },
      );
    });
  }
  return promise;
}
