/**
 * Two small SVG charts, drawn here rather than with a chart library: the views need a line per quantile and a bar
 * per bucket, nothing a dependency would add. Each chart is an image with a label; the numbers it draws are in a
 * table next to it, for people who read tables and for screen readers.
 */

const W = 640;
const H = 180;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

export interface Series {
  name: string;
  colour: string;
  values: Array<number | null>;
}

function scale(max: number) {
  const top = max <= 0 ? 1 : max;
  return (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / top);
}

function xAt(i: number, n: number): number {
  const span = W - PAD.left - PAD.right;
  return n <= 1 ? PAD.left + span / 2 : PAD.left + (span * i) / (n - 1);
}

function Axes({ labels, max, format, xOf, edge = false }: { labels: string[]; max: number; format: (v: number) => string; xOf: (i: number) => number; edge?: boolean }) {
  const y = scale(max);
  const every = Math.max(1, Math.ceil(labels.length / 8));
  return (
    <g fontSize="10" fill="#667085">
      <line x1={PAD.left} x2={W - PAD.right} y1={y(0)} y2={y(0)} stroke="#d0d5dd" />
      <text x={PAD.left - 4} y={y(max)} textAnchor="end" dominantBaseline="middle">
        {format(max)}
      </text>
      <text x={PAD.left - 4} y={y(0)} textAnchor="end" dominantBaseline="middle">
        0
      </text>
      {labels.map((l, i) =>
        i % every === 0 ? (
          <text key={l + i} x={xOf(i)} y={H - 8} textAnchor={edge && i === labels.length - 1 && labels.length > 1 ? 'end' : 'middle'}>
            {l}
          </text>
        ) : null,
      )}
    </g>
  );
}

export function LineChart({ label, labels, series, format }: { label: string; labels: string[]; series: Series[]; format: (v: number) => string }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)));
  const y = scale(max);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
        <title>{label}</title>
        <Axes labels={labels} max={max} format={format} xOf={(i) => xAt(i, labels.length)} edge />
        {series.map((s) => {
          const points = s.values.map((v, i) => (v === null ? null : [xAt(i, labels.length), y(v)] as const));
          // A gap (no step verified in a bucket) breaks the line instead of drawing through zero.
          const runs: Array<Array<readonly [number, number]>> = [[]];
          for (const p of points) {
            if (p) runs.at(-1)!.push(p);
            else if (runs.at(-1)!.length > 0) runs.push([]);
          }
          return (
            <g key={s.name} stroke={s.colour} fill={s.colour}>
              {runs.filter((r) => r.length > 1).map((r, i) => (
                <polyline key={i} fill="none" strokeWidth="2" points={r.map(([px, py]) => `${px},${py}`).join(' ')} />
              ))}
              {points.map((p, i) => (p ? <circle key={i} cx={p[0]} cy={p[1]} r="3" /> : null))}
            </g>
          );
        })}
      </svg>
      <Legend series={series} />
    </figure>
  );
}

function Legend({ series }: { series: Series[] }) {
  return (
    <figcaption>
      {series.map((s) => (
        <span key={s.name} className="legend">
          <i style={{ background: s.colour }} /> {s.name}
        </span>
      ))}
    </figcaption>
  );
}

export function BarChart({ label, labels, series, format = String }: { label: string; labels: string[]; series: Series[]; format?: (v: number) => string }) {
  const max = Math.max(0, ...series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const y = scale(max);
  const slot = (W - PAD.left - PAD.right) / Math.max(1, labels.length);
  const bar = Math.max(2, (slot * 0.8) / Math.max(1, series.length));
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
        <title>{label}</title>
        <Axes labels={labels} max={max} format={format} xOf={(i) => PAD.left + slot * (i + 0.5)} />
        {series.map((s, si) =>
          s.values.map((v, i) => {
            const x = PAD.left + slot * i + slot * 0.1 + bar * si;
            const top = y(v ?? 0);
            return <rect key={`${s.name}${i}`} x={x} y={top} width={bar} height={y(0) - top} fill={s.colour} />;
          }),
        )}
      </svg>
      <Legend series={series} />
    </figure>
  );
}
