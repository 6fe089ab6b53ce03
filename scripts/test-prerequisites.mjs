// Makes `pnpm test` work on a fresh Debian machine: the Redis pub/sub test runs a real
// redis-server (Debian's package), installed here when missing and possible.
import { execSync } from 'node:child_process';

const has = (command) => {
  try {
    execSync(`command -v ${command}`, { stdio: 'ignore', shell: '/bin/sh' });
    return true;
  } catch {
    return false;
  }
};

if (!has('redis-server')) {
  const root = process.getuid?.() === 0;
  if (!has('apt-get') || !(root || has('sudo'))) {
    console.error('The tests need redis-server (Debian: apt-get install -y redis-server).');
    process.exit(1);
  }
  console.log('Installing redis-server (Debian package) for the Redis pub/sub test…');
  const sudo = root ? '' : 'sudo ';
  execSync(
    `${sudo}apt-get update -qq && ${sudo}env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server`,
    {
      stdio: 'inherit',
      shell: '/bin/sh',
    },
  );
}
