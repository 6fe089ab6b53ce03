/**
 * Ports for what must be told its port before it listens: the embedded PostgreSQL, and in the
 * tests Redis, HAProxy's frontend and an app of the test's process whose PUBLIC_URL names it. A
 * port free when it is chosen can be taken before the listener binds it (another program's
 * listener, or an outgoing connection given it as its local port), so what starts on one starts
 * again on another when its start says the address is in use. A server child, which needs up to a
 * minute to start, picks its own port instead (server/test/server-process.ts).
 */
import { type AddressInfo, createServer } from 'node:net';

/** How many ports a start is tried on before its error is thrown. */
const ATTEMPTS = 3;

/** A port free now: held, then let go at once. */
export async function freePort(): Promise<number> {
  const held = await holdPort();
  await held.release();
  return held.port;
}

/** Whether a start failed because its port was taken (Node, PostgreSQL, redis-server, HAProxy). */
export function addressInUse(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  // PostgreSQL's error carries its log's last lines: the HINT names the port, the bind line is earlier.
  return /EADDRINUSE|address already in use|cannot bind socket|another postmaster already running on port/i.test(
    message,
  );
}

/**
 * `start(port)` on a free port, again on a new one (up to {@link ATTEMPTS} in all) while it fails
 * with the address in use. `first` is the port tried first (default: a free one).
 */
export async function onFreePort<T>(
  start: (port: number) => Promise<T>,
  first?: number,
  onRetry?: (taken: number) => void,
): Promise<T> {
  let port = first ?? (await freePort());
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(port);
    } catch (error) {
      if (attempt >= ATTEMPTS || !addressInUse(error)) throw error;
      onRetry?.(port);
      port = await freePort();
    }
  }
}

/** A free port kept listening by this process until `release`, for a listener told its port early. */
export interface HeldPort {
  port: number;
  release(): Promise<void>;
}

export function holdPort(): Promise<HeldPort> {
  return new Promise((done, fail) => {
    // A connection to the held port is closed at once: it would otherwise keep `release` waiting.
    const server = createServer((socket) => socket.destroy())
      .once('error', fail)
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        done({ port, release: () => new Promise((closed) => server.close(() => closed())) });
      });
  });
}
