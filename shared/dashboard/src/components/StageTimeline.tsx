export interface StreamEvent {
  job_id: string;
  seq: number;
  kind: "queued" | "moderation" | "extraction" | "progress" | "inference" | "complete" | "failed";
  at: string;
  data: Record<string, unknown>;
}

const STAGES: { kind: StreamEvent["kind"]; label: string }[] = [
  { kind: "queued", label: "Queued" },
  { kind: "moderation", label: "Moderation" },
  { kind: "extraction", label: "Extraction" },
  { kind: "inference", label: "Scoring" },
  { kind: "complete", label: "Done" },
];

const STEP_LABELS: Record<string, string> = { received: "Received", measured: "Measured", thumbnails: "Stills taken" };

/** The job's stages as its live stream tells them: done, under way, or still to come. */
export function StageTimeline({ events }: { events: StreamEvent[] }) {
  const seen = new Set(events.map((e) => e.kind));
  const failed = events.find((e) => e.kind === "failed");
  const reached = STAGES.reduce((last, s, i) => (seen.has(s.kind) ? i : last), -1);
  const progress = events.filter((e) => e.kind === "progress");
  const latest = progress[progress.length - 1];
  const status = failed
    ? "Failed"
    : seen.has("complete")
      ? "Done"
      : reached >= 0
        ? `${STAGES[reached].label}${latest && reached === 2 ? `: ${STEP_LABELS[String(latest.data.step)] ?? latest.data.step}` : ""}`
        : "Connecting";
  return (
    <div className="card">
      <h2 className="sr-only">Progress</h2>
      <ol className="stages" aria-label="Stages">
        {STAGES.map((s, i) => {
          const state = failed && i === reached + 1 ? "failed" : i < reached || seen.has("complete") ? "done" : i === reached ? "current" : "todo";
          const at = events.find((e) => e.kind === s.kind)?.at;
          return (
            <li key={s.kind} className={`stage ${state}`} aria-current={state === "current" ? "step" : undefined}>
              <span className="dot" aria-hidden="true" />
              <span>{s.label}</span>
              {/* The time's place is kept before it is known, so nothing moves when it comes. */}
              {at ? (
                <time className="muted small stage-time" dateTime={at}>
                  {new Date(at).toLocaleTimeString()}
                </time>
              ) : (
                <span className="muted small stage-time" aria-hidden="true" />
              )}
            </li>
          );
        })}
      </ol>
      {latest && !seen.has("complete") && !failed && typeof latest.data.done === "number" && typeof latest.data.of === "number" && (
        <progress max={Number(latest.data.of)} value={Number(latest.data.done)} aria-label="Media progress" />
      )}
      <p role="status" aria-live="polite" className="status-line">
        {status}
      </p>
    </div>
  );
}
