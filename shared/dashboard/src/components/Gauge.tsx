// The score on a half-circle gauge, with the band of scores the model cannot tell apart from
// it (its honesty about precision) drawn as a lighter arc.

const R = 80;
const CX = 100;
const CY = 100;

function point(score: number): [number, number] {
  const angle = Math.PI * (1 - Math.min(100, Math.max(0, score)) / 100);
  return [CX + R * Math.cos(angle), CY - R * Math.sin(angle)];
}

function arc(from: number, to: number): string {
  const [x1, y1] = point(from);
  const [x2, y2] = point(to);
  return `M ${x1.toFixed(2)} ${y1.toFixed(2)} A ${R} ${R} 0 0 1 ${x2.toFixed(2)} ${y2.toFixed(2)}`;
}

export function Gauge({ score, confidence, band }: { score: number; confidence: number; band?: [number, number] }) {
  const rounded = Math.round(score);
  const label = `Score ${rounded} out of 100` + (band ? `, likely between ${Math.round(band[0])} and ${Math.round(band[1])}` : "") + `, confidence ${Math.round(confidence * 100)}%`;
  return (
    <figure className="gauge">
      <svg viewBox="0 0 200 120" role="img" aria-label={label}>
        <path d={arc(0, 100)} className="gauge-track" />
        {band && <path d={arc(band[0], band[1])} className="gauge-band" />}
        <path d={arc(0, score)} className="gauge-value" />
        <text x={CX} y={CY - 10} textAnchor="middle" className="gauge-number">
          {rounded}
        </text>
      </svg>
      <figcaption>
        <strong>{rounded}</strong>/100 · confidence {Math.round(confidence * 100)}%
        {band && (
          <span className="muted small">
            {" "}
            · band {Math.round(band[0])}–{Math.round(band[1])}
          </span>
        )}
      </figcaption>
    </figure>
  );
}
