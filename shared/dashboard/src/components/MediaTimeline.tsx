import type { Media, MediaFinding } from "../api";

const W = 600;
/** Left of this, the lanes' names; right of it, the video's time. */
const LEFT = 64;
const RIGHT = 12;
const LANES = { cuts: 18, speech: 44, text: 70, findings: 96 };

/** A tick every 1, 2, 5, 10, 15 or 30 s: about six across the video. */
function tickStep(duration: number): number {
  return [1, 2, 5, 10, 15, 30, 60].find((s) => duration / s <= 8) ?? 60;
}

function fmt(s: number | null | undefined, unit = "s"): string {
  return s === null || s === undefined ? "—" : `${s.toFixed(1)} ${unit}`;
}

/** What was measured along the video: cuts, speech, text on screen, the findings, and the
 * stills; the same facts as a list for readers who do not see the picture. */
export function MediaTimeline({ media, findings }: { media: Media; findings: MediaFinding[] }) {
  const duration = Math.max(media.duration_s, 0.1);
  const x = (t: number) => LEFT + (Math.min(Math.max(t, 0), duration) / duration) * (W - LEFT - RIGHT);
  const step = tickStep(duration);
  const ticks = Array.from({ length: Math.floor(duration / step) + 1 }, (_, i) => i * step);
  const screen = media.on_screen_text ?? [];
  return (
    <div className="media">
      <svg viewBox={`0 0 ${W} 130`} className="timeline" role="img" aria-label={`Timeline of a ${duration.toFixed(1)} second video: ${media.scenes.cuts_s.length} cuts, ${media.speech.segments.length} spoken segments, ${screen.length} frames with text`}>
        {[["Cuts", LANES.cuts], ["Speech", LANES.speech], ["Text", LANES.text], ["Findings", LANES.findings]].map(([label, y]) => (
          <g key={label}>
            <text x={4} y={Number(y) + 4} className="lane-label">
              {label}
            </text>
            <line x1={LEFT} x2={W - RIGHT} y1={Number(y)} y2={Number(y)} className="lane" />
          </g>
        ))}
        {media.scenes.cuts_s.map((t, i) => (
          <line key={`c${i}`} x1={x(t)} x2={x(t)} y1={LANES.cuts - 6} y2={LANES.cuts + 6} className="cut">
            <title>{`cut at ${t.toFixed(2)} s`}</title>
          </line>
        ))}
        {media.speech.segments.map((s, i) => (
          <rect key={`s${i}`} x={x(s.start_s)} y={LANES.speech - 5} width={Math.max(2, x(s.end_s) - x(s.start_s))} height={10} className="speech">
            <title>{`${s.start_s.toFixed(1)}–${s.end_s.toFixed(1)} s: ${s.text}`}</title>
          </rect>
        ))}
        {screen.filter((f) => f.text.trim()).map((f, i) => (
          <circle key={`t${i}`} cx={x(f.t_s)} cy={LANES.text} r={4} className="screen-text">
            <title>{`${f.t_s.toFixed(1)} s: ${f.text}`}</title>
          </circle>
        ))}
        {findings.map((f, i) => (
          <rect key={`f${i}`} x={x(f.at_s)} y={LANES.findings - 5} width={Math.max(4, f.until_s ? x(f.until_s) - x(f.at_s) : 4)} height={10} className="finding">
            <title>{f.message}</title>
          </rect>
        ))}
        {ticks.map((t) => (
          <text key={`x${t}`} x={x(t)} y={124} className="axis" textAnchor={t === 0 ? "start" : "middle"}>
            {t} s
          </text>
        ))}
      </svg>

      {media.thumbnails && media.thumbnails.some((t) => t.url) && (
        <ul className="stills" aria-label="Stills">
          {media.thumbnails.filter((t) => t.url).map((t) => (
            <li key={t.key}>
              <img src={t.url} alt={`Frame at ${t.t_s.toFixed(1)} s`} loading="lazy" width={160} height={90} />
              <span className="small muted">{t.t_s.toFixed(1)} s</span>
            </li>
          ))}
        </ul>
      )}

      <dl className="facts">
        <div><dt>Length</dt><dd>{fmt(media.duration_s)} · {media.width}×{media.height}</dd></div>
        <div><dt>Cuts</dt><dd>{media.scenes.cuts_s.length} ({media.scenes.cuts_per_minute.toFixed(1)} a minute), first at {fmt(media.scenes.first_cut_s)}</dd></div>
        <div><dt>Loudness</dt><dd>{media.audio.loudness_lufs === null ? "—" : `${media.audio.loudness_lufs.toFixed(1)} LUFS`}</dd></div>
        <div><dt>First words</dt><dd>{fmt(media.audio.speech_onset_s)}{media.speech.words_per_minute ? ` · ${Math.round(media.speech.words_per_minute)} words a minute` : ""}</dd></div>
        <div><dt>Faces</dt><dd>{media.faces ? `${media.faces.in_hook ? "in the hook" : "not in the hook"} · ${Math.round(media.faces.share_of_frames * 100)}% of frames` : "not checked"}</dd></div>
      </dl>

      {findings.length > 0 && (
        <>
          <h3>Findings</h3>
          <ul className="fixes">
            {findings.map((f, i) => (
              <li key={i}>
                <strong>{f.at_s.toFixed(1)} s:</strong> {f.message} <em>{f.fix}</em>
              </li>
            ))}
          </ul>
        </>
      )}
      {media.speech.transcript && (
        <details>
          <summary>Transcript</summary>
          <ol className="transcript">
            {media.speech.segments.map((s, i) => (
              <li key={i}>
                <span className="muted small">{s.start_s.toFixed(1)} s</span> {s.text}
              </li>
            ))}
          </ol>
        </details>
      )}
      {screen.some((f) => f.text.trim()) && (
        <details>
          <summary>Text on screen</summary>
          <ul>
            {screen.filter((f) => f.text.trim()).map((f, i) => (
              <li key={i}>
                <span className="muted small">{f.t_s.toFixed(1)} s</span> {f.text}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}
