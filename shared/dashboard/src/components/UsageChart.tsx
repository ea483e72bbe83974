import type { UsageBucket } from "../api";

const KINDS = ["text", "post", "video", "compare"] as const;
const W = 600;
const H = 160;

/** Units a day, stacked by kind, as bars; the same numbers as a table for screen readers. */
export function UsageChart({ buckets, days }: { buckets: UsageBucket[]; days: number }) {
  const today = new Date();
  const dates = Array.from({ length: days }, (_, i) => new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - (days - 1 - i))).toISOString().slice(0, 10));
  const byDay = new Map<string, Record<string, number>>();
  for (const b of buckets) {
    const day = b.start.slice(0, 10);
    const row = byDay.get(day) ?? {};
    row[b.kind] = (row[b.kind] ?? 0) + Math.max(0, b.units);
    byDay.set(day, row);
  }
  const totals = dates.map((d) => KINDS.reduce((sum, k) => sum + (byDay.get(d)?.[k] ?? 0), 0));
  const max = Math.max(1, ...totals);
  const slot = W / days;
  return (
    <figure className="usage-chart">
      <svg viewBox={`0 0 ${W} ${H + 20}`} role="img" aria-label={`Units used per day over the last ${days} days; the most in one day was ${max}`}>
        {dates.map((d, i) => {
          let y = H;
          return (
            <g key={d}>
              {KINDS.map((k) => {
                const units = byDay.get(d)?.[k] ?? 0;
                if (!units) return null;
                const h = (units / max) * (H - 10);
                y -= h;
                return (
                  <rect key={k} x={i * slot + 1} y={y} width={slot - 2} height={h} className={`kind-${k}`}>
                    <title>{`${d}: ${units} ${k}`}</title>
                  </rect>
                );
              })}
            </g>
          );
        })}
        <line x1={0} x2={W} y1={H} y2={H} className="lane" />
        <text x={0} y={H + 16} className="axis">
          {dates[0]}
        </text>
        <text x={W} y={H + 16} className="axis" textAnchor="end">
          {dates[dates.length - 1]}
        </text>
      </svg>
      <figcaption className="legend">
        {KINDS.map((k) => (
          <span key={k}>
            <span className={`swatch kind-${k}`} aria-hidden="true" /> {k}
          </span>
        ))}
      </figcaption>
      <table className="sr-only">
        <caption>Units per day</caption>
        <thead>
          <tr>
            <th scope="col">Day</th>
            <th scope="col">Units</th>
          </tr>
        </thead>
        <tbody>
          {dates.map((d, i) =>
            totals[i] ? (
              <tr key={d}>
                <td>{d}</td>
                <td>{totals[i]}</td>
              </tr>
            ) : null,
          )}
        </tbody>
      </table>
    </figure>
  );
}
