import { navigate } from '../../app/router';
import { formatDuration, formatTime } from '../../ui/format';

export interface RunPoint {
  id: string;
  clinicName?: string | null;
  startedAt: string;
  durationMs: number | null;
  ok: boolean;
}

const WIDTH = 720;
const HEIGHT = 240;
const PAD = { top: 16, right: 16, bottom: 32, left: 64 };

/** Registration durations over time: one mark per run, with the p50 and p95 lines. Plain SVG. */
export function DurationChart({
  runs,
  p50,
  p95,
}: {
  runs: RunPoint[];
  p50: number | null;
  p95: number | null;
}) {
  const points = runs.filter((run) => run.durationMs !== null);
  if (points.length === 0) return null;
  const times = points.map((run) => Date.parse(run.startedAt));
  const t0 = Math.min(...times);
  const t1 = Math.max(...times, t0 + 1000);
  const maxMs = Math.max(...points.map((run) => run.durationMs as number), p95 ?? 0, 1) * 1.1;
  const x = (t: number) => PAD.left + ((t - t0) / (t1 - t0)) * (WIDTH - PAD.left - PAD.right);
  const y = (ms: number) => HEIGHT - PAD.bottom - (ms / maxMs) * (HEIGHT - PAD.top - PAD.bottom);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxMs);
  const failures = points.filter((run) => !run.ok).length;
  const summary = `${points.length} registrations between ${formatTime(new Date(t0).toISOString())} and ${formatTime(
    new Date(t1).toISOString(),
  )}; ${failures} failed; median ${formatDuration(p50)}, 95th percentile ${formatDuration(p95)}.`;

  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={summary}>
        {ticks.map((ms) => (
          <g key={ms} className="chart-grid">
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(ms)} y2={y(ms)} />
            <text x={PAD.left - 8} y={y(ms)} dy="0.32em" textAnchor="end">
              {formatDuration(ms)}
            </text>
          </g>
        ))}
        <text className="chart-axis" x={PAD.left} y={HEIGHT - 8}>
          {formatTime(new Date(t0).toISOString())}
        </text>
        <text className="chart-axis" x={WIDTH - PAD.right} y={HEIGHT - 8} textAnchor="end">
          {formatTime(new Date(t1).toISOString())}
        </text>
        {p50 !== null && (
          <g className="chart-line chart-p50">
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(p50)} y2={y(p50)} />
            <text x={PAD.left + 4} y={y(p50) + 12}>
              p50
            </text>
          </g>
        )}
        {p95 !== null && (
          <g className="chart-line chart-p95">
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y(p95)} y2={y(p95)} />
            <text x={WIDTH - PAD.right} y={y(p95) - 4} textAnchor="end">
              p95
            </text>
          </g>
        )}
        {points.map((run) => {
          const cx = x(Date.parse(run.startedAt));
          const cy = y(run.durationMs as number);
          const name = run.clinicName ?? 'registration';
          const label = run.ok
            ? `${name}, ${formatTime(run.startedAt)}: ${formatDuration(run.durationMs)}`
            : `${name}, ${formatTime(run.startedAt)}: failed after ${formatDuration(run.durationMs)}`;
          const href = `/runs/${run.id}`;
          // Each point opens its run (steps, error); a link, so keyboard and new tabs work too.
          return (
            <a
              key={run.id}
              href={href}
              className="chart-point"
              aria-label={label}
              data-run-id={run.id}
              onClick={(event) => {
                if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
                event.preventDefault();
                navigate(href);
              }}
            >
              <title>{label}</title>
              {/* A larger transparent target than the mark itself. */}
              <circle className="chart-hit" cx={cx} cy={cy} r={9} />
              {run.ok ? (
                <circle className="chart-ok" cx={cx} cy={cy} r={4} />
              ) : (
                <path className="chart-failed" d={`M${cx - 4},${cy - 4}l8,8m0,-8l-8,8`} />
              )}
            </a>
          );
        })}
      </svg>
      <figcaption>
        <span className="legend legend-ok">● succeeded</span>{' '}
        <span className="legend legend-failed">✕ failed</span> — duration of each registration by start time
        (last {points.length}); select a point for its steps and error.
      </figcaption>
    </figure>
  );
}
