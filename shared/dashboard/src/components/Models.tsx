import { api, type ModelVersion } from "../api";
import { useList } from "../useList";
import { ErrorNote } from "./ErrorNote";

const BADGE: Record<ModelVersion["state"], string> = {
  candidate: "queued",
  approved: "processing",
  serving: "complete",
  rejected: "failed",
  retired: "archived",
};

/** The scorer's model registry: what serves, and the candidates retraining registered, with
 * their gate results. Admins approve or reject, promote, and roll back; each decision is
 * audited, and a candidate that did not beat the serving model needs a reason to approve. */
export function Models() {
  const { items, error, act } = useList<ModelVersion>("/api/v1/admin/models");
  const decide = (v: ModelVersion, action: "approve" | "reject" | "promote") => {
    const override = action === "approve" && !v.gate_passed;
    const note = window.prompt(
      override
        ? `${v.label} did not beat the serving model on the gate. Approving it anyway needs a reason:`
        : `Note for ${action === "reject" ? "rejecting" : action === "approve" ? "approving" : "promoting"} ${v.label} (optional):`,
    );
    if (note === null || (override && !note.trim())) return;
    act(() => api("POST", `/api/v1/admin/models/${v.model_version_id}/${action}`, { note: note.trim() || null, override_gate: override }));
  };
  const rollback = () => {
    const note = window.prompt("Roll back to the version that served before? A note for the audit log (optional):");
    if (note !== null) act(() => api("POST", "/api/v1/admin/models/rollback", { note: note.trim() || null }));
  };
  const serving = items?.find((v) => v.state === "serving");
  // Rolling back needs a version that served before this one.
  const earlier = items?.some((v) => v.state === "retired" && v.serving_since !== null) ?? false;

  return (
    <div className="card">
      <h2>Scorer models</h2>
      {error !== null && <ErrorNote error={error} />}
      <p className="muted">
        {serving ? (
          <>
            Serving <strong>{serving.label}</strong> since {new Date(serving.serving_since ?? serving.created_at).toLocaleString()}.{" "}
            {earlier && (
              <button type="button" className="secondary" onClick={rollback}>
                Roll back
              </button>
            )}
          </>
        ) : (
          "The built-in model serves: no registered version has been promoted."
        )}
      </p>
      {items && items.length > 0 && (
        <table>
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">State</th>
              <th scope="col">Gate</th>
              <th scope="col">Decision</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((v) => (
              <tr key={v.model_version_id}>
                <td>
                  <code>{v.label}</code>
                  <div className="muted small">code {v.code_version}</div>
                </td>
                <td>
                  <span className={`badge ${BADGE[v.state]}`}>{v.state}</span>
                </td>
                <td>
                  {v.gate_summary}
                  {v.overridden && <div className="small">approved over the gate</div>}
                </td>
                <td className="small">
                  {v.decided_by ? `${v.decided_by}, ${new Date(v.decided_at ?? v.created_at).toLocaleString()}` : "—"}
                  {v.decision_note && <div className="muted">“{v.decision_note}”</div>}
                </td>
                <td>
                  {v.state === "candidate" && (
                    <div className="row">
                      <button type="button" onClick={() => decide(v, "approve")}>
                        {v.gate_passed ? "Approve" : "Approve anyway…"}
                      </button>
                      <button type="button" className="secondary" onClick={() => decide(v, "reject")}>
                        Reject
                      </button>
                    </div>
                  )}
                  {v.state === "approved" && (
                    <button type="button" onClick={() => decide(v, "promote")}>
                      Promote
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
