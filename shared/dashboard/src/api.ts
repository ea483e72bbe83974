// The API as the dashboard uses it. The session is an HttpOnly cookie the page cannot read;
// what the page holds is the session's CSRF token, in memory only, sent on every request
// that changes state.

/** Where the API is: the page's own origin (`goviral serve`), or, for the static site on
 * AWS, the API's origin given at build time. */
export const API_BASE: string = import.meta.env.VITE_API_BASE ?? "";

export type Plan = "free" | "pro" | "enterprise";
export type Platform = "tiktok" | "youtube" | "instagram" | "x";
export type JobStatus = "queued" | "processing" | "complete" | "failed" | "archived";
export type Category = "hook" | "pacing" | "emotion" | "storytelling" | "cta";

export interface Session {
  user_id: string;
  email: string;
  plan: Plan;
  roles: string[];
  csrf_token: string | null;
}

export interface Insight {
  category: Category;
  message: string;
  recommendations: string[];
  weight: number;
}

export interface Job {
  job_id: string;
  status: JobStatus;
  score: number | null;
  confidence: number | null;
  insights?: Insight[] | null;
  metrics?: Metrics | null;
  errors?: unknown;
  moderation_flags?: unknown;
  created_at: string;
  completed_at: string | null;
}

export interface SpeechSegment { start_s: number; end_s: number; text: string }
export interface Media {
  duration_s: number;
  width: number;
  height: number;
  fps: number;
  has_audio: boolean;
  scenes: { cuts_s: number[]; cuts_per_minute: number; first_cut_s: number | null };
  audio: { loudness_lufs: number | null; true_peak_dbtp: number | null; silence_ratio: number | null; speech_onset_s: number | null };
  speech: { transcript: string; segments: SpeechSegment[]; words_per_minute: number | null; reason?: string | null };
  on_screen_text: { t_s: number; text: string }[] | null;
  faces: { in_hook: boolean; share_of_frames: number } | null;
  thumbnails?: { t_s: number; key: string; url?: string }[];
}
export interface MediaFinding { category: Category; rule: string; message: string; fix: string; at_s: number; until_s: number | null }
export interface Metrics {
  sub_scores?: Partial<Record<Category, number>>;
  score_band?: [number, number];
  media?: Media;
  media_findings?: MediaFinding[];
  creator_baseline?: CreatorBaseline;
  model_version?: string;
  [key: string]: unknown;
}

export interface CreatorBaseline {
  platform: Platform | null;
  sample_size: number;
  needed: number;
  median_views: number | null;
  predicted_vs_median: number | null;
  predicted_vs_median_band: [number, number] | null;
  percentile_among_past: number | null;
  calibration: { pairs: number; pairwise_accuracy: number | null; rank_correlation: number | null };
}

export interface Account {
  account_id: string;
  platform: Platform;
  external_id: string;
  handle: string | null;
  followers: number | null;
  status: "active" | "reauth_required";
  scopes: string[];
  last_error: string | null;
  connected_at: string;
}

export interface TrackedPost {
  tracked_post_id: string;
  account_id: string;
  platform: Platform;
  post_id: string;
  post_url: string | null;
  posted_at: string;
  followers: number | null;
  checks_done: number;
  next_check_at: string | null;
  last_error: string | null;
}

export interface Observation {
  outcome_id: string;
  platform: Platform | null;
  post_url: string | null;
  observed_at: string;
  views: number | null;
  likes: number | null;
  comments: number | null;
  shares: number | null;
  followers: number | null;
  source: "api" | "platform";
}

export interface ModelVersion {
  model_version_id: string;
  label: string;
  state: "candidate" | "approved" | "rejected" | "serving" | "retired";
  gate_summary: string;
  gate_passed: boolean;
  overridden: boolean;
  code_version: string;
  training_data_hash: string;
  decided_by: string | null;
  decided_at: string | null;
  decision_note: string | null;
  serving_since: string | null;
  created_at: string;
}

export interface Ranked { rank: number; index: number; text: string; score: number; p_beats_next: number | null; reasons: string[] }
export interface Comparison { comparison_id: string; ranking: Ranked[]; pairwise: number[][]; confidence: number; model: string }

export interface HistoryItem { job_id: string; score: number | null; status: JobStatus; created_at: string }
export interface ApiKey { id: string; prefix: string; created_at: string; last_used_at: string | null; revoked_at: string | null; rotated_from: string | null; api_key?: string | null }
export interface Webhook { id: string; target_url: string; events: string[]; active: boolean; created_at: string; secret?: string | null }
export interface UsageCurrent {
  plan: Plan; period: string; period_end: string; allowance: number; used: number; remaining: number;
  hard_cap: boolean; overage_units: number; overage_cents_per_unit: number; credits: number | null;
}
export interface UsageBucket { start: string; end: string; kind: string; units: number; analyses: number; reversed: number }

/** An error the API answered with its standard body, or one the network gave. */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details?: unknown,
    public requestId?: string | null,
  ) {
    super(message);
  }

  /** The message with the field errors it names, for a person. */
  describe(): string {
    // A validation error names its fields: `{"fields": [{"field", "message"}]}`.
    const listed = (this.details as { fields?: unknown } | null | undefined)?.fields ?? this.details;
    const fields = Array.isArray(listed) ? (listed as { field?: string; message?: string }[]).map((d) => `${d.field}: ${d.message}`) : [];
    return fields.length ? `${this.message} (${fields.join("; ")})` : this.message;
  }
}

let csrfToken: string | null = null;
let onSessionLost: () => void = () => {};

export function setCsrf(token: string | null) {
  csrfToken = token;
}

/** Called when a request is refused for want of a session (revoked key, expired session). */
export function whenSessionLost(handler: () => void) {
  onSessionLost = handler;
}

const CHANGES_STATE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export async function api<T>(method: string, path: string, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json", ...extraHeaders };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (CHANGES_STATE.has(method) && csrfToken) headers["x-csrf-token"] = csrfToken;
  let response: Response;
  try {
    response = await fetch(API_BASE + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: API_BASE ? "include" : "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The server could not be reached. Check your connection and try again.");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.status === 401 && !path.startsWith("/api/v1/auth/")) onSessionLost();
  if (!response.ok) {
    const error = (parsed as { error?: { code?: string; message?: string; details?: unknown } } | null)?.error;
    throw new ApiError(
      response.status,
      error?.code ?? "http_" + response.status,
      error?.message ?? `The server answered ${response.status}.`,
      error?.details,
      response.headers.get("x-request-id"),
    );
  }
  return parsed as T;
}

/** Puts a file to a signed upload URL, reporting progress (fetch cannot report an upload's). */
export function putWithProgress(
  url: string,
  headers: Record<string, string>,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
  signal: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) {
      // The browser sets these itself and refuses to be told.
      if (!["content-length", "host"].includes(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = `The upload was refused (${xhr.status}).`;
      try {
        message = JSON.parse(xhr.responseText).error.message ?? message;
      } catch {
        /* not our JSON (S3's XML): keep the status */
      }
      reject(new ApiError(xhr.status, "upload_failed", message));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload was interrupted. Try again."));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "The upload was cancelled."));
    signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

export const PLATFORMS: { id: Platform; label: string }[] = [
  { id: "tiktok", label: "TikTok" },
  { id: "youtube", label: "YouTube" },
  { id: "instagram", label: "Instagram" },
  { id: "x", label: "X" },
];

export const CATEGORY_LABELS: Record<Category, string> = {
  hook: "Hook",
  pacing: "Pacing",
  emotion: "Emotion",
  storytelling: "Storytelling",
  cta: "Call to action",
};

export const VIDEO_TYPES = ["video/mp4", "video/quicktime", "video/webm"];
export const VIDEO_MAX_BYTES = 512 * 1024 * 1024;
