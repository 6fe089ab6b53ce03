/**
 * Processes a test starts (redis-server, HAProxy, server children) end with the process that
 * started them, even when it ends without running its `afterAll` hooks: killed by the runner, a
 * crash, a `kill -9`. Each is started through util-linux's `setpriv --pdeathsig TERM`, which asks
 * the kernel to send it SIGTERM when its parent goes, then executes the command in its place (same
 * pid, same file descriptors, the IPC channel included). Without it such a child stays behind,
 * adopted by pid 1, as full-suite runs left a `redis-server` each.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

export function spawnOwned(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'TERM', '--', command, ...args], options);
}
