// Makes `pnpm test` work on a fresh Debian machine: the Redis pub/sub test runs a real
// redis-server, the cluster test (and `pnpm cluster`) HAProxy and redis-server, the console's
// browser tests a real chromium (Debian's packages), installed here when missing and possible.
// `--cluster` asks only for what `pnpm cluster` needs.
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const has = (command) => {
  try {
    execSync(`command -v ${command}`, { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
};

const clusterOnly = process.argv.includes('--cluster');
const missing = [];
if (!has('redis-server')) missing.push('redis-server');
// Debian installs it in /usr/sbin, which a non-root PATH may lack.
if (!has('haproxy') && !existsSync('/usr/sbin/haproxy')) missing.push('haproxy');
// The browser tests drive this binary (console/e2e); CHROMIUM_PATH points elsewhere.
if (!clusterOnly && !existsSync(process.env.CHROMIUM_PATH ?? '/usr/bin/chromium')) missing.push('chromium');

if (missing.length > 0) {
  const root = process.getuid?.() === 0;
  const list = missing.join(' ');
  if (!has('apt-get') || !(root || has('sudo'))) {
    console.error(
      `${clusterOnly ? 'pnpm cluster needs' : 'The tests need'} ${list} (Debian: apt-get install -y ${list}).`,
    );
    process.exit(1);
  }
  console.log(`Installing ${list} (Debian packages) for ${clusterOnly ? 'pnpm cluster' : 'the tests'}…`);
  const sudo = root ? '' : 'sudo ';
  execSync(
    `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${list}`,
    {
      stdio: 'inherit',
      shell: '/bin/sh',
    },
  );
}
