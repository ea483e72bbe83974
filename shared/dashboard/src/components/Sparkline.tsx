const W = 120;
const H = 28;

/** A small line of recent values; its label says the latest and the peak. */
export function Sparkline({ values, label }: { values: number[]; label: string }) {
  if (values.length < 2) return <span className="muted small">collecting…</span>;
  const max = Math.max(...values, 1e-9);
  const points = values.map((v, i) => `${((i / (values.length - 1)) * W).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`).join(" ");
  const latest = values[values.length - 1];
  return (
    <svg className="sparkline" viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={`${label}: now ${latest.toFixed(2)}, peak ${max.toFixed(2)}`}>
      <polyline points={points} />
    </svg>
  );
}
