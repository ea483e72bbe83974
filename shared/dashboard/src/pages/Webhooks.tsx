import { useState, type FormEvent } from "react";
import { useList } from "../useList";
import { api, type Webhook } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { Secret } from "../components/Secret";

const EVENTS = [
  { id: "job.completed", label: "Job completed" },
  { id: "job.failed", label: "Job failed" },
  { id: "usage.threshold", label: "Usage at 80% and 100%" },
];

export function Webhooks() {
  const { items: hooks, error, act } = useList<Webhook>("/api/v1/webhooks");
  const [target, setTarget] = useState("");
  const [events, setEvents] = useState<string[]>(EVENTS.map((e) => e.id));
  const [shown, setShown] = useState<{ label: string; value: string } | null>(null);

  const create = (e: FormEvent) => {
    e.preventDefault();
    act(async () => {
      const hook = await api<Webhook>("POST", "/api/v1/webhooks", { target_url: target.trim(), events });
      setShown({ label: `Signing secret for ${hook.target_url}`, value: hook.secret ?? "" });
      setTarget("");
    });
  };
  const remove = (h: Webhook) => {
    if (!window.confirm(`Stop sending to ${h.target_url}?`)) return;
    act(() => api("DELETE", `/api/v1/webhooks/${h.id}`));
  };
  const rotateSigning = () =>
    act(async () => {
      const s = await api<{ signing_id: string; secret: string }>("POST", "/api/v1/webhooks/signing-secret/rotate");
      setShown({ label: `New signing secret for notify_webhook (${s.signing_id})`, value: s.secret });
    });

  return (
    <section>
      <h1>Webhooks</h1>
      <form className="card stack" onSubmit={create}>
        <h2>Add a subscription</h2>
        <label htmlFor="target-url">Target URL (a public https:// address)</label>
        <input id="target-url" type="url" inputMode="url" required placeholder="https://example.com/hooks/goviral" value={target} onChange={(e) => setTarget(e.target.value)} />
        <fieldset className="choices">
          <legend>Events</legend>
          {EVENTS.map((ev) => (
            <label key={ev.id}>
              <input
                type="checkbox"
                checked={events.includes(ev.id)}
                onChange={(e) => setEvents(e.target.checked ? [...events, ev.id] : events.filter((x) => x !== ev.id))}
              />{" "}
              {ev.label}
            </label>
          ))}
        </fieldset>
        <button type="submit" disabled={!target.trim() || events.length === 0}>
          Add
        </button>
      </form>
      {shown && <Secret label={shown.label} value={shown.value} onDone={() => setShown(null)} />}
      {error !== null && <ErrorNote error={error} />}
      {hooks && (
        <div className="card">
          <h2>Subscriptions</h2>
          {hooks.length === 0 ? (
            <p className="muted">None yet.</p>
          ) : (
            <ul className="plain">
              {hooks.map((h) => (
                <li key={h.id} className="row">
                  <code className="grow">{h.target_url}</code>
                  <span className="muted small">{h.events.join(", ")}</span>
                  <button type="button" className="danger" onClick={() => remove(h)} aria-label={`Delete the webhook to ${h.target_url}`}>
                    Delete
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
      <div className="card">
        <h2>Signing secret for a submission's notify_webhook</h2>
        <p className="muted">Deliveries to the webhook named in a submission are signed with your account's secret. Rotating it replaces it at once.</p>
        <button type="button" className="secondary" onClick={rotateSigning}>
          Rotate the signing secret
        </button>
      </div>
    </section>
  );
}
