/**
 * CPU accounting for the suites, from Linux /proc: the PostgreSQL server's processes (sessions
 * and background workers) and the whole machine. Elsewhere every function answers undefined.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

export function readPostmasterPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

interface PgProcess {
  ticks: number;
  /** A background process's name ("walwriter", "io worker"), or undefined for a session. */
  background?: string;
}

interface PgCpu {
  postmaster: number;
  /** CPU of the postmaster's reaped children: every process that ended. */
  reaped: number;
  processes: Map<number, PgProcess>;
}

/** CPU ticks of the PostgreSQL server's processes (Linux /proc), or undefined elsewhere. */
export function postgresCpu(postmasterPid: number | undefined): PgCpu | undefined {
  if (postmasterPid === undefined || !existsSync(`/proc/${postmasterPid}/stat`)) return undefined;
  const stat = (pid: string | number) => {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name: ppid 2nd, utime/stime 12th/13th, cutime/cstime 14th/15th.
    const fields = text
      .slice(text.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    return {
      ppid: fields[1] ?? 0,
      own: (fields[11] ?? 0) + (fields[12] ?? 0),
      children: (fields[13] ?? 0) + (fields[14] ?? 0),
    };
  };
  let snapshot: PgCpu;
  try {
    const postmaster = stat(postmasterPid);
    snapshot = { postmaster: postmaster.own, reaped: postmaster.children, processes: new Map() };
  } catch {
    return undefined;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const child = stat(entry);
      if (child.ppid !== postmasterPid) continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      // "postgres: postgres mydb 127.0.0.1(5432) idle" and, over the Unix socket, "postgres:
      // postgres mydb [local] idle" are sessions; "postgres: io worker 1" is not.
      const session = /^postgres: \S+ \S+ (\[local\]|\S+\(\d+\))/.test(title);
      snapshot.processes.set(Number(entry), {
        ticks: child.own,
        background: session ? undefined : title.replace(/^postgres: /, '').replace(/\s*\d+$/, ''),
      });
    } catch {
      // Ended meanwhile: its time lands in `reaped`.
    }
  }
  return snapshot;
}

/**
 * Cores used between two snapshots by: sessions open at both (pooled connections: Prisma, the
 * job worker, the event bus, health pools), sessions opened during the interval (short
 * withClient sessions: clone, verify, seed, refill), and each background process kind.
 */
export function pgCpuDelta(
  before: PgCpu | undefined,
  after: PgCpu | undefined,
  ms: number,
): { total: number; parts: Map<string, number> } | undefined {
  if (!before || !after) return undefined;
  const ticks = new Map<string, number>();
  const add = (key: string, value: number) => ticks.set(key, (ticks.get(key) ?? 0) + value);
  add('postmaster', after.postmaster - before.postmaster);
  // Reaped children: their whole life, minus what they had already used at the first snapshot.
  let reaped = after.reaped - before.reaped;
  for (const [pid, proc] of before.processes) {
    if (!after.processes.has(pid)) reaped -= proc.ticks;
  }
  for (const [pid, proc] of after.processes) {
    const earlier = before.processes.get(pid);
    if (proc.background) add(proc.background, proc.ticks - (earlier?.ticks ?? 0));
    else if (earlier) add('pooled sessions', proc.ticks - earlier.ticks);
    else add('sessions opened during the burst', proc.ticks);
  }
  // Also any autovacuum worker that started and ended meanwhile.
  add('sessions opened during the burst', Math.max(0, reaped));
  const parts = new Map<string, number>();
  let total = 0;
  for (const [key, value] of ticks) {
    const cores = value / TICKS_PER_SECOND / (ms / 1000);
    total += cores;
    if (cores >= 0.005) parts.set(key, cores);
  }
  return { total, parts };
}

/** Busy and total jiffies of the whole machine (Linux), or undefined elsewhere. */
export function systemCpu(): { busy: number; total: number } | undefined {
  if (!existsSync('/proc/stat')) return undefined;
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.slice(0, 8).reduce((sum, value) => sum + value, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
}

/** Cores the whole machine kept busy between two {@link systemCpu} readings (undefined without /proc). */
export function busyCores(
  before: ReturnType<typeof systemCpu>,
  after: ReturnType<typeof systemCpu>,
): number | undefined {
  if (!before || !after || after.total === before.total) return undefined;
  return ((after.busy - before.busy) / (after.total - before.total)) * cpus().length;
}
