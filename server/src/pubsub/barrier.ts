/**
 * Shares a barrier's round trips between concurrent callers (decision 065): one in flight and at
 * most one queued behind it. A caller arriving while one is in flight waits for the next, since
 * the one in flight may have been read by the server before the caller came.
 * @param roundTrip resolves true when everything sent before it has been delivered; never rejects.
 */
export function sharedBarrier(roundTrip: () => Promise<boolean>): () => Promise<boolean> {
  let current: Promise<boolean> | undefined;
  let next: Promise<boolean> | undefined;
  const start = (): Promise<boolean> => {
    const mine = roundTrip();
    current = mine;
    const clear = () => {
      if (current === mine) current = undefined;
    };
    mine.then(clear, clear);
    return mine;
  };
  return () => {
    if (!current) return start();
    next ??= current.then(() => {
      next = undefined;
      return start();
    });
    return next;
  };
}
