import { useEffect, useState } from "react";
import { api, API_BASE, CATEGORY_LABELS, type CreatorBaseline, type Job } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { Gauge } from "../components/Gauge";
import { SubScores } from "../components/SubScores";
import { MediaTimeline } from "../components/MediaTimeline";
import { FollowPost } from "../components/FollowPost";
import { StageTimeline, type StreamEvent } from "../components/StageTimeline";
import { Link } from "../router";

/** A job as it happens: the live stage timeline (Server-Sent Events), then the result. */
export function JobPage({ jobId }: { jobId: string }) {
  const [events, setEvents] = useState<StreamEvent[]>([]);
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [streamProblem, setStreamProblem] = useState<string | null>(null);

  useEffect(() => {
    setEvents([]);
    setJob(null);
    setError(null);
    let source: EventSource | null = null;
    let stopped = false;
    let retries = 0;

    const loadResult = () =>
      api<Job>("GET", `/api/v1/analyze/${jobId}?include_insights=true&expand=metrics`)
        .then((j) => !stopped && setJob(j))
        .catch((e) => !stopped && setError(e));

    // EventSource cannot send headers: a 5-minute token scoped to this job opens the stream.
    // The stream closes at the end; a dropped one is reopened with a new token (events are
    // told again from the start and kept once each, by id).
    async function open() {
      try {
        const { stream_token } = await api<{ stream_token: string }>("POST", `/api/v1/analyze/${jobId}/stream-token`);
        if (stopped) return;
        // Beside the API: on AWS the dashboard's distribution forwards streams to their
        // function URL, so the page stays on one origin.
        const url = `${API_BASE}/api/v1/analyze/${jobId}/events?stream_token=${encodeURIComponent(stream_token)}`;
        source = new EventSource(url);
        const onEvent = (e: MessageEvent) => {
          retries = 0;
          setStreamProblem(null);
          const event = JSON.parse(e.data) as StreamEvent;
          setEvents((all) => (all.some((x) => x.seq === event.seq) ? all : [...all, event].sort((a, b) => a.seq - b.seq)));
          if (event.kind === "complete" || event.kind === "failed") {
            source?.close();
            loadResult();
          }
        };
        for (const kind of ["queued", "moderation", "extraction", "progress", "inference", "complete", "failed"]) {
          source.addEventListener(kind, onEvent as EventListener);
        }
        source.onerror = () => {
          if (source?.readyState === EventSource.CLOSED && !stopped) {
            retries += 1;
            setStreamProblem("The live connection dropped; reconnecting…");
            setTimeout(() => !stopped && open(), Math.min(30_000, 1000 * 2 ** retries));
          }
        };
      } catch (e) {
        if (!stopped) setError(e);
      }
    }
    open();
    return () => {
      stopped = true;
      source?.close();
    };
  }, [jobId]);

  const ended = events.find((e) => e.kind === "complete" || e.kind === "failed");
  return (
    <section>
      <h1>Analysis</h1>
      <p className="muted small">
        Job <code>{jobId}</code> · <Link to="/">Analyze another</Link>
      </p>
      {error !== null && <ErrorNote error={error} />}
      <StageTimeline events={events} />
      {streamProblem && !ended && (
        <p className="muted" role="status">
          {streamProblem}
        </p>
      )}
      {job && job.status === "failed" && <Failure job={job} />}
      {job && job.status === "complete" && <Result job={job} />}
      {job && job.status === "complete" && <FollowPost jobId={jobId} />}
    </section>
  );
}

function Failure({ job }: { job: Job }) {
  const errors = Array.isArray(job.errors) ? (job.errors as { stage?: string; reason?: string; error?: string }[]) : [];
  return (
    <div className="card" role="alert">
      <h2>The analysis failed</h2>
      <ul>
        {errors.map((e, i) => (
          <li key={i}>
            {e.stage ? <strong>{e.stage}: </strong> : null}
            {e.reason ?? e.error ?? "unknown error"}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Result({ job }: { job: Job }) {
  const metrics = job.metrics ?? {};
  const findings = metrics.media_findings ?? [];
  return (
    <div className="stack">
      <div className="card result">
        <Gauge score={job.score ?? 0} confidence={job.confidence ?? 0} band={metrics.score_band} />
        {metrics.sub_scores && <SubScores scores={metrics.sub_scores} />}
      </div>
      <div className="card">
        <h2>What to change</h2>
        <ul className="insights">
          {(job.insights ?? []).map((insight) => (
            <li key={insight.category}>
              <h3>
                {CATEGORY_LABELS[insight.category]} <span className="muted small">weight {Math.round(insight.weight * 100)}%</span>
              </h3>
              <p>{insight.message}</p>
              {insight.recommendations.length > 0 && (
                <ul className="fixes">
                  {insight.recommendations.map((r, i) => (
                    <li key={i}>{r}</li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      </div>
      {metrics.creator_baseline && <Baseline baseline={metrics.creator_baseline} />}
      {metrics.media && (
        <div className="card">
          <h2>Media timeline</h2>
          <MediaTimeline media={metrics.media} findings={findings} />
        </div>
      )}
    </div>
  );
}

function Baseline({ baseline: b }: { baseline: CreatorBaseline }) {
  const times = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)}×`;
  return (
    <div className="card">
      <h2>Against your own posts</h2>
      {b.predicted_vs_median === null ? (
        <p className="muted">
          Once {b.needed} of your posts{b.platform ? ` on ${b.platform}` : ""} have outcomes ({b.sample_size} so far), this says how this post
          should do against your usual.
        </p>
      ) : (
        <>
          <p>
            Expected <strong>{times(b.predicted_vs_median)}</strong> your median views
            {b.median_views !== null && <span className="muted"> ({b.median_views.toLocaleString()})</span>}
            {b.predicted_vs_median_band && (
              <span className="muted">
                {" "}
                · middle half of such posts: {times(b.predicted_vs_median_band[0])}–{times(b.predicted_vs_median_band[1])}
              </span>
            )}
          </p>
          <p className="muted small">
            From {b.sample_size} of your posts{b.platform ? ` on ${b.platform}` : ""}.
            {b.calibration.pairwise_accuracy !== null &&
              ` Past scores ranked your posts right ${Math.round(b.calibration.pairwise_accuracy * 100)}% of the time (${b.calibration.pairs} pairs).`}
          </p>
        </>
      )}
    </div>
  );
}
