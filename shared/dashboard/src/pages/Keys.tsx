import { useState } from "react";
import { useList } from "../useList";
import { api, type ApiKey } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { Secret } from "../components/Secret";

/** Issue, rotate and revoke API keys. A new key is shown once; revoking the key this
 * session was opened with ends the session. */
export function Keys({ onSessionEnded }: { onSessionEnded: () => void }) {
  const { items: keys, error, act } = useList<ApiKey>("/api/v1/keys");
  const [shown, setShown] = useState<{ label: string; key: string } | null>(null);

  const issue = () =>
    act(async () => {
      const k = await api<ApiKey>("POST", "/api/v1/keys");
      setShown({ label: `New key ${k.prefix}`, key: k.api_key ?? "" });
    });
  const rotate = (k: ApiKey) =>
    act(async () => {
      const next = await api<ApiKey>("POST", `/api/v1/keys/${k.id}/rotate`);
      setShown({ label: `Key ${k.prefix} rotated to ${next.prefix}`, key: next.api_key ?? "" });
    });
  const revoke = (k: ApiKey) => {
    if (!window.confirm(`Revoke key ${k.prefix}? Anything using it stops working at once.`)) return;
    act(async () => {
      await api("DELETE", `/api/v1/keys/${k.id}`);
      // Signed in with that key? Then the session has ended with it.
      await api("GET", "/api/v1/auth/session").catch(() => onSessionEnded());
    });
  };

  return (
    <section>
      <h1>API keys</h1>
      <div className="row">
        <button type="button" onClick={issue}>
          Issue a new key
        </button>
      </div>
      {shown && <Secret label={shown.label} value={shown.key} onDone={() => setShown(null)} />}
      {error !== null && <ErrorNote error={error} />}
      {keys && (
        <div className="card">
          <table>
            <caption className="sr-only">Your API keys</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Created</th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => (
                <tr key={k.id}>
                  <td>
                    <code>{k.prefix}…</code>
                  </td>
                  <td>{new Date(k.created_at).toLocaleDateString()}</td>
                  <td>{k.last_used_at ? new Date(k.last_used_at).toLocaleString() : "never"}</td>
                  <td>{k.revoked_at ? <span className="badge failed">revoked</span> : <span className="badge complete">active</span>}</td>
                  <td className="actions">
                    {!k.revoked_at && (
                      <>
                        <button type="button" className="secondary" onClick={() => rotate(k)} aria-label={`Rotate key ${k.prefix}`}>
                          Rotate
                        </button>
                        <button type="button" className="danger" onClick={() => revoke(k)} aria-label={`Revoke key ${k.prefix}`}>
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
