import { ApiError } from "../api";

/** An API error as a person reads it, announced to screen readers. */
export function ErrorNote({ error, id }: { error: unknown; id?: string }) {
  const e = error instanceof ApiError ? error : new ApiError(0, "error", String(error));
  return (
    <p className="error" role="alert" id={id}>
      {e.describe()}
      {e.requestId && <span className="muted small"> (request {e.requestId})</span>}
    </p>
  );
}
