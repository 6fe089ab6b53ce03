/**
 * What one built-in leaf certificate costs (decision 076): not a suite, a micro-benchmark.
 *
 *   cd server && npx tsx ../bench/leaf-certificate.ts [rounds] [issues]
 *
 * A CA in a temporary folder and the built-in issuer through its public surface
 * (`ensureCertificate`), its store replaced by one that has nothing and keeps nothing, so only the
 * certificate is timed: key pair, certificate, signature, PEM. `issues` (default 1000) one after
 * another, as registrations ask, per round (default 6); per issue: wall time, the process's CPU
 * (every thread: key generation and signing run on libuv's) and the main thread's (/proc, 10 ms
 * ticks, hence the many issues), beside the cores other processes kept busy meanwhile. The same
 * file runs unchanged against an older build.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../server/src/logger.js';
import {
  BuiltinCertificateIssuer,
  type CertificateStore,
  type IssuedCertificate,
} from '../server/src/modules/certificates/service.js';
import { busyCores, systemCpu } from './cpu.js';
import { median } from './lib.js';

const rounds = Number(process.argv[2] ?? 6);
const issues = Number(process.argv[3] ?? 1000);
const TICK_MS = 10;

const store = {
  live: async () => undefined,
  save: async (issued: IssuedCertificate) => issued,
} as unknown as CertificateStore;
const logger = { info: () => {} } as unknown as Logger;
const dir = mkdtempSync(join(tmpdir(), 'onramp-leaf-bench-'));
const issuer = new BuiltinCertificateIssuer({ store, caDir: join(dir, 'ca'), zone: 'bench.test', logger });

function mainThreadCpuMs(): number {
  const text = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = text
    .slice(text.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  return ((fields[11] ?? 0) + (fields[12] ?? 0)) * TICK_MS;
}

await issuer.ensureCertificate('warm-up.bench.test'); // the CA, made once, and the JIT
for (let i = 0; i < 200; i += 1) await issuer.ensureCertificate(`warm-${i}.bench.test`);

const wall: number[] = [];
const cpu: number[] = [];
const main: number[] = [];
const others: number[] = [];
for (let round = 0; round < rounds; round += 1) {
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  const mainBefore = mainThreadCpuMs();
  const machineBefore = systemCpu();
  for (let i = 0; i < issues; i += 1) await issuer.ensureCertificate(`clinic-${round}-${i}.bench.test`);
  const used = process.cpuUsage(cpuBefore);
  const elapsedMs = performance.now() - started;
  const machine = busyCores(machineBefore, systemCpu());
  if (machine !== undefined) others.push(Math.max(0, machine - (used.user + used.system) / 1000 / elapsedMs));
  wall.push(elapsedMs / issues);
  cpu.push((used.user + used.system) / 1000 / issues);
  main.push((mainThreadCpuMs() - mainBefore) / issues);
  console.error(
    `round ${round + 1}: ${wall.at(-1)?.toFixed(3)} ms wall, ${cpu.at(-1)?.toFixed(3)} ms CPU (main thread ${main.at(-1)?.toFixed(3)}) per issue`,
  );
}
const fmt = (samples: number[]) =>
  `${median(samples).toFixed(3)} ms (${Math.min(...samples).toFixed(3)}–${Math.max(...samples).toFixed(3)})`;
console.log(
  JSON.stringify({
    issues,
    rounds,
    wall: fmt(wall),
    cpu: fmt(cpu),
    mainThread: fmt(main),
    otherProcesses: others.length ? `${median(others).toFixed(2)} cores` : 'n/a',
    load: readFileSync('/proc/loadavg', 'utf8').trim(),
  }),
);
rmSync(dir, { recursive: true, force: true });
