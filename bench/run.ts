/**
 * `pnpm bench`: runs every suite of SUITES, prints one table per suite and writes
 * bench/results/<suite>.json. Missed targets are printed, never turned into a failing exit
 * code: the numbers are ratios measured on whatever machine runs them, for people to read.
 *
 * Benchmarks are not the server, so this file (and only this one) reads its knobs from
 * process.env:
 *   BENCH_ITERATIONS  timed iterations per latency benchmark (default 30)
 *   BENCH_CLINICS     comma-separated clinic counts for the fleet benchmarks (default 200,1000)
 *   BENCH_REGISTRATIONS  registerClinic calls of the registration burst, all clients together (default 64)
 *   BENCH_OTP_FLOWS   e-mail code sign-in flows per system and round of the otp suite (default 200)
 *   BENCH_MOVE_ROWS   rows of the clinic the move suite moves (default 100000)
 *   BENCH_ONLY        comma-separated suite names to run (default: every suite)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cluster } from './cluster.js';
import { health } from './health.js';
import { type BenchOptions, formatMs, type Row, removeBenchFiles, type Suite } from './lib.js';
import { me } from './me.js';
import { move } from './move.js';
import { otp } from './otp.js';
import { provisioning } from './provisioning.js';
import { registration } from './registration.js';
import { socket } from './socket.js';

/** Add a suite here (a module exporting a `Suite`) to have it run, printed and saved. */
const SUITES: Suite[] = [provisioning, registration, otp, me, socket, cluster, move, health];

const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'results');

function readOptions(env: NodeJS.ProcessEnv): { options: BenchOptions; suites: Suite[] } {
  const problems: string[] = [];
  const positive = (name: string, raw: string) => {
    const value = Number(raw.trim());
    if (!Number.isInteger(value) || value < 1) problems.push(`${name}: "${raw}" is not a positive integer`);
    return value;
  };
  const iterations = positive('BENCH_ITERATIONS', env.BENCH_ITERATIONS || '30');
  const clinics = (env.BENCH_CLINICS || '200,1000')
    .split(',')
    .filter((item) => item.trim() !== '')
    .map((item) => positive('BENCH_CLINICS', item));
  const registrations = positive('BENCH_REGISTRATIONS', env.BENCH_REGISTRATIONS || '64');
  const otpFlows = positive('BENCH_OTP_FLOWS', env.BENCH_OTP_FLOWS || '200');
  const moveRows = positive('BENCH_MOVE_ROWS', env.BENCH_MOVE_ROWS || '100000');
  const only = (env.BENCH_ONLY || '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  for (const name of only) {
    if (!SUITES.some((suite) => suite.name === name)) {
      problems.push(`BENCH_ONLY: "${name}" is not a suite (${SUITES.map((suite) => suite.name).join(', ')})`);
    }
  }
  if (problems.length > 0) {
    console.error(`Invalid benchmark settings:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`);
    process.exit(2);
  }
  return {
    options: {
      iterations,
      clinics: [...new Set(clinics)].sort((a, b) => a - b),
      registrations,
      otpFlows,
      moveRows,
      log: (line) => process.stderr.write(`  … ${line}\n`),
    },
    suites: only.length === 0 ? SUITES : SUITES.filter((suite) => only.includes(suite.name)),
  };
}

function verdict(row: Row): string {
  if (row.pass === undefined) return '';
  return row.pass ? 'PASS' : 'FAIL';
}

function table(rows: readonly Row[]): string {
  const header = ['benchmark', 'n', 'p50 ms', 'p95 ms', 'p99 ms', 'ratio', 'target', 'result'];
  const cells = rows.map((row) => [
    row.name,
    String(row.n),
    formatMs(row.p50Ms),
    formatMs(row.p95Ms),
    formatMs(row.p99Ms),
    row.ratioText ?? (row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}×`),
    row.target?.text ?? '',
    verdict(row),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...cells.map((line) => (line[column] ?? '').length)),
  );
  // Text columns left-aligned, numbers right-aligned.
  const leftAligned = new Set([0, 5, 6, 7]);
  const format = (line: string[]) =>
    line
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        return leftAligned.has(column) ? cell.padEnd(width) : cell.padStart(width);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '─'.repeat(width)).join('  ');
  return [format(header), rule, ...cells.map(format)].join('\n');
}

/** Runs one suite, prints its table and notes, saves its JSON; the names of its missed targets. */
async function runSuite(suite: Suite, options: BenchOptions): Promise<string[]> {
  console.log(`\n▶ ${suite.name}`);
  const startedAt = new Date();
  const result = await suite.run(options);
  const seconds = (Date.now() - startedAt.getTime()) / 1000;
  const missed = result.rows.filter((row) => row.pass === false);
  const judged = result.rows.filter((row) => row.pass !== undefined);

  console.log(`\n${table(result.rows)}\n`);
  for (const note of result.notes) console.log(`  · ${note}`);
  console.log(
    missed.length === 0
      ? `\n  ${judged.length}/${judged.length} targets met (${seconds.toFixed(0)} s).`
      : `\n  ✗ ${missed.length}/${judged.length} targets MISSED (${seconds.toFixed(0)} s):\n` +
          missed
            .map(
              (row) => `      ${row.name.trim()}: ${row.ratioText ?? row.ratio}, target ${row.target?.text}`,
            )
            .join('\n'),
  );

  const file = join(RESULTS_DIR, `${suite.name}.json`);
  const json = {
    suite: suite.name,
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round(seconds),
    options: {
      iterations: options.iterations,
      clinics: options.clinics,
      registrations: options.registrations,
      otpFlows: options.otpFlows,
    },
    host: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryBytes: totalmem(),
    },
    meta: result.meta,
    rows: result.rows,
    notes: result.notes,
    missed: missed.map((row) => row.name.trim()),
  };
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`  results: ${relative(process.cwd(), file)}`);
  return missed.map((row) => `${suite.name}: ${row.name.trim()}`);
}

async function main(): Promise<void> {
  const { options, suites } = readOptions(process.env);
  mkdirSync(RESULTS_DIR, { recursive: true });
  console.log(
    `Onramp benchmarks — ${suites.map((suite) => suite.name).join(', ')}: ${options.iterations} iterations, ` +
      `clinics ${options.clinics.join(', ')}, ${options.registrations} registrations, ${options.otpFlows} otp flows ` +
      `(BENCH_ITERATIONS, BENCH_CLINICS, BENCH_REGISTRATIONS, BENCH_OTP_FLOWS); node ${process.version}, ${cpus().length} CPUs`,
  );
  const allMissed: string[] = [];

  for (const suite of suites) {
    try {
      allMissed.push(...(await runSuite(suite, options)));
    } finally {
      // Once its results are printed and saved: a fleet's files take minutes to delete.
      removeBenchFiles(options.log);
    }
  }

  if (allMissed.length > 0) {
    console.log(
      `\nMISSED TARGETS (${allMissed.length}):\n${allMissed.map((name) => `  - ${name}`).join('\n')}`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
