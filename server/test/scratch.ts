/**
 * Where throw-away PostgreSQL servers keep their files, for the tests and the bench: a tmpfs when
 * the machine has one with room to spare, else the system's temporary folder (docs/decisions/098).
 * On this machine's ext4, which has no journal, every new file skips the inodes freed in the last
 * minutes (the kernel's `recently_deleted` scan), so a clone's 300 files cost 110–270 ms of
 * kernel time after a run of drops, against 14 ms on a tmpfs.
 */
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';

const SHM = '/dev/shm';
const TMPFS_MAGIC = 0x01021994;
/** Left free beside the files, for everything else the machine runs. */
const HEADROOM_BYTES = 8 * 2 ** 30;

/**
 * The folder for `bytes` of throw-away files: an explicit `TMPDIR` wins; then /dev/shm when it
 * is a tmpfs with `bytes` plus the headroom free; else `os.tmpdir()`.
 */
export function scratchRoot(bytes: number): string {
  if (process.env.TMPDIR) return tmpdir();
  try {
    const fs = statfsSync(SHM);
    if (fs.type === TMPFS_MAGIC && fs.bavail * fs.bsize >= bytes + HEADROOM_BYTES) return SHM;
  } catch {
    // no /dev/shm here
  }
  return tmpdir();
}
