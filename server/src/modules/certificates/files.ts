import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The files of `dir`, created once by `create` when `dir` does not exist. They are written into
 * a temporary folder renamed into place, so a concurrent start (another process on the same
 * data dir) sees all of them or none, and the loser of the race reads the winner's. Files are
 * mode 0600 and the folder 0700: they hold private keys.
 */
export async function loadOrCreateFiles<Name extends string>(
  dir: string,
  names: readonly Name[],
  create: () => Promise<Record<Name, string>>,
): Promise<Record<Name, string>> {
  if (!existsSync(dir)) {
    mkdirSync(dirname(dir), { recursive: true });
    const staging = mkdtempSync(`${dir}.tmp-`);
    try {
      const files = await create();
      for (const name of names) writeFileSync(join(staging, name), files[name], { mode: 0o600 });
      chmodSync(staging, 0o700);
      try {
        renameSync(staging, dir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw error;
      }
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  }
  return Object.fromEntries(names.map((name) => [name, readFileSync(join(dir, name), 'utf8')])) as Record<
    Name,
    string
  >;
}
