import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, ApiError, PLATFORMS, putWithProgress, VIDEO_MAX_BYTES, VIDEO_TYPES, type Platform, type Session } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { useRouter } from "../router";
import { takeSharedItem } from "../share";

type Kind = "text" | "video";

interface UploadTicket {
  upload_id: string;
  upload: { method: string; url: string; headers: Record<string, string> };
}

const CAPTION_MAX = 10_000;

export function Submit({ session }: { session: Session }) {
  const { navigate, search } = useRouter();
  const [kind, setKind] = useState<Kind>("text");
  const [caption, setCaption] = useState("");
  const [platform, setPlatform] = useState<Platform | "">("tiktok");
  const [webhook, setWebhook] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [progress, setProgress] = useState<{ sent: number; total: number } | null>(null);
  const [phase, setPhase] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const abort = useRef<AbortController | null>(null);

  // A video shared from the phone's gallery (Web Share Target) arrives here.
  useEffect(() => {
    if (!new URLSearchParams(search).has("shared")) return;
    takeSharedItem().then((shared) => {
      if (!shared) return;
      if (shared.file) {
        setKind("video");
        setFile(shared.file);
      }
      if (shared.text) setCaption(shared.text.slice(0, CAPTION_MAX));
    });
  }, [search]);

  const fileProblem =
    file && !VIDEO_TYPES.includes(file.type)
      ? `${file.name} is ${file.type || "of an unknown type"}; upload an MP4, MOV or WebM video.`
      : file && file.size > VIDEO_MAX_BYTES
        ? `${file.name} is larger than 512 MiB.`
        : null;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setError(null);
    const controller = new AbortController();
    abort.current = controller;
    // One key per submission: a retry after a lost answer is not charged twice.
    const idempotencyKey = crypto.randomUUID();
    try {
      const body: Record<string, unknown> = { content_type: kind, user_id: session.user_id };
      if (caption.trim()) body.caption = caption;
      if (platform) body.platform_hint = platform;
      if (webhook.trim()) body.notify_webhook = webhook.trim();
      if (kind === "video") {
        if (!file) throw new ApiError(0, "no_file", "Choose a video to upload.");
        setPhase("Uploading");
        const ticket = await api<UploadTicket>("POST", "/api/v1/uploads", { media_type: file.type, size_bytes: file.size, filename: file.name });
        setProgress({ sent: 0, total: file.size });
        await putWithProgress(ticket.upload.url, ticket.upload.headers, file, (sent, total) => setProgress({ sent, total }), controller.signal);
        setPhase("Checking the upload");
        await waitUntilReady(ticket.upload_id, controller.signal);
        body.upload_id = ticket.upload_id;
      }
      setPhase("Submitting");
      const job = await api<{ job_id: string }>("POST", "/api/v1/analyze", body, { "idempotency-key": idempotencyKey });
      navigate(`/jobs/${job.job_id}`);
    } catch (err) {
      setError(err);
    } finally {
      setPhase(null);
      setProgress(null);
      abort.current = null;
    }
  }

  const busy = phase !== null;
  const percent = progress && progress.total > 0 ? Math.round((100 * progress.sent) / progress.total) : 0;

  return (
    <section>
      <h1>Analyze content</h1>
      <form className="card stack" onSubmit={submit} aria-busy={busy}>
        <fieldset className="choices">
          <legend>What are you analyzing?</legend>
          <label>
            <input type="radio" name="kind" value="text" checked={kind === "text"} onChange={() => setKind("text")} /> A caption or post
          </label>
          <label>
            <input type="radio" name="kind" value="video" checked={kind === "video"} onChange={() => setKind("video")} /> A video
          </label>
        </fieldset>

        {kind === "video" && (
          <div className="stack">
            <label htmlFor="video-file">Video (MP4, MOV or WebM, up to 512 MiB and 3 minutes)</label>
            <input
              id="video-file"
              type="file"
              accept={VIDEO_TYPES.join(",")}
              onChange={(e) => setFile(e.target.files?.[0] ?? null)}
              aria-describedby={fileProblem ? "file-problem" : undefined}
            />
            {file && !fileProblem && (
              <p className="muted small">
                Selected: {file.name} · {file.size < 1024 * 1024 ? `${Math.max(1, Math.round(file.size / 1024))} KiB` : `${(file.size / 1024 / 1024).toFixed(1)} MiB`}
              </p>
            )}
            {fileProblem && (
              <p className="error" id="file-problem" role="alert">
                {fileProblem}
              </p>
            )}
          </div>
        )}

        <label htmlFor="caption">{kind === "video" ? "Caption (optional)" : "Caption or post text"}</label>
        <textarea
          id="caption"
          rows={5}
          maxLength={CAPTION_MAX}
          required={kind === "text"}
          value={caption}
          onChange={(e) => setCaption(e.target.value)}
          placeholder="5 mistakes everyone makes with sourdough"
        />
        <p className="muted small" aria-live="polite">
          {caption.length.toLocaleString()} / {CAPTION_MAX.toLocaleString()} characters
        </p>

        <div className="row">
          <div className="stack grow">
            <label htmlFor="platform">Platform</label>
            <select id="platform" value={platform} onChange={(e) => setPlatform(e.target.value as Platform | "")}>
              <option value="">Any</option>
              {PLATFORMS.map((p) => (
                <option key={p.id} value={p.id}>
                  {p.label}
                </option>
              ))}
            </select>
          </div>
          <div className="stack grow">
            <label htmlFor="webhook">Webhook when done (optional)</label>
            <input id="webhook" type="url" inputMode="url" placeholder="https://example.com/hooks/goviral" value={webhook} onChange={(e) => setWebhook(e.target.value)} />
          </div>
        </div>

        {progress && (
          <div className="stack">
            <label htmlFor="upload-progress">Uploading: {percent}%</label>
            <progress id="upload-progress" max={progress.total} value={progress.sent}>
              {percent}%
            </progress>
          </div>
        )}

        <div className="row">
          <button type="submit" disabled={busy || (kind === "video" && (!file || !!fileProblem)) || (kind === "text" && !caption.trim())}>
            {phase ? `${phase}…` : "Analyze"}
          </button>
          {busy && kind === "video" && (
            <button type="button" className="secondary" onClick={() => abort.current?.abort()}>
              Cancel
            </button>
          )}
        </div>
        {error !== null && <ErrorNote error={error} />}
      </form>
    </section>
  );
}

/** An upload is taken in as it lands; this waits for it to be ready (or says why not). */
async function waitUntilReady(uploadId: string, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; attempt < 60; attempt++) {
    if (signal.aborted) throw new ApiError(0, "aborted", "The upload was cancelled.");
    const upload = await api<{ status: string; rejection: string | null }>("GET", `/api/v1/uploads/${uploadId}`);
    if (upload.status === "ready") return;
    if (upload.status === "rejected") throw new ApiError(422, "upload_rejected", upload.rejection ?? "The upload was rejected.");
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new ApiError(0, "timeout", "The upload is taking too long to be checked. Try again in a minute.");
}
