/**
 * A port free now, for what must be told its port before it listens: an app of this process whose
 * PUBLIC_URL names it, Redis, HAProxy's frontend. The gap between this close and that listen is
 * short only when the listener starts at once; a server child, which needs up to a minute to
 * start, picks its own port instead (server/test/server-process.ts).
 */
import { type AddressInfo, createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer()
      .once('error', fail)
      .listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => done(port));
      });
  });
}
