import { useEffect, useRef, useState } from "react";
import { useRouter } from "../router";
import { useList } from "../useList";
import { api, type Account, type Platform } from "../api";
import { ErrorNote } from "../components/ErrorNote";

const PLATFORMS: { id: Platform; label: string }[] = [
  { id: "youtube", label: "YouTube" },
  { id: "tiktok", label: "TikTok" },
  { id: "instagram", label: "Instagram" },
  { id: "x", label: "X" },
];

/** Connected platform accounts: their posts' counts come back as outcomes, which feed the
 * creator baseline and retraining. Connecting sends the browser to the platform's consent
 * page; the platform sends it back to the API's callback, which sends it on here with what
 * the platform said, and this page finishes the connection with the signed-in creator's
 * session (the API refuses it unless this account started it). */
export function Accounts() {
  const { items: accounts, error, act } = useList<Account>("/api/v1/accounts");
  const [starting, setStarting] = useState<Platform | null>(null);
  // Where the platform's redirect leaves the creator: what happened, from the callback.
  const { search } = useRouter();
  const back = new URLSearchParams(search);
  const returned = back.get("state");
  const connected = back.get("connected");
  const failed = returned ? null : back.get("error");
  const [finished, setFinished] = useState<Account | null>(null);
  const finishing = useRef(false);

  useEffect(() => {
    if (!returned || finishing.current) return;
    finishing.current = true;
    const body = {
      state: returned,
      code: back.get("code") ?? undefined,
      error: back.get("error") ?? undefined,
      error_description: back.get("error_description") ?? undefined,
    };
    // The code is single-use, but it has no business in the history or a bookmark.
    window.history.replaceState(null, "", "/accounts");
    act(async () => setFinished(await api<Account>("POST", "/api/v1/accounts/callback", body)));
    // Once, for the address the platform sent the browser back to.
  }, []);

  const connect = (platform: Platform) =>
    act(async () => {
      setStarting(platform);
      try {
        const start = await api<{ authorize_url: string }>("POST", "/api/v1/accounts/connect", { platform });
        window.location.assign(start.authorize_url);
      } finally {
        setStarting(null);
      }
    });
  const disconnect = (a: Account) => {
    if (!window.confirm(`Disconnect ${a.handle ?? a.external_id}? Its tokens are deleted and its posts no longer followed.`)) return;
    act(() => api("DELETE", `/api/v1/accounts/${a.account_id}`));
  };

  return (
    <section>
      <h1>Accounts</h1>
      <div className="card stack">
        <h2>Connect an account</h2>
        <p className="muted">
          Read access only. Posts you link to an analysis are read at about 24 hours and 7 days, and what they did comes back as
          outcomes.
        </p>
        <div className="row">
          {PLATFORMS.map((p) => (
            <button key={p.id} type="button" className="secondary" disabled={starting !== null} onClick={() => connect(p.id)}>
              Connect {p.label}
            </button>
          ))}
        </div>
      </div>
      {(finished || connected) && (
        <p className="card" role="status">
          Connected your {PLATFORMS.find((p) => p.id === (finished?.platform ?? connected))?.label ?? connected} account
          {finished ? ` ${finished.handle ?? finished.external_id}` : ""}.
        </p>
      )}
      {failed && (
        <p className="error" role="alert">
          The connection did not complete: {failed}
        </p>
      )}
      {error !== null && <ErrorNote error={error} />}
      {accounts && (
        <div className="card">
          <h2>Connected</h2>
          {accounts.length === 0 ? (
            <p className="muted">None yet.</p>
          ) : (
            <ul className="plain">
              {accounts.map((a) => (
                <li key={a.account_id} className="row">
                  <span className="grow">
                    <strong>{a.handle ?? a.external_id}</strong> <span className="muted small">{a.platform}</span>
                    {a.followers !== null && <span className="muted small"> · {a.followers.toLocaleString()} followers</span>}
                    {a.status === "reauth_required" && (
                      <span className="small" role="status">
                        {" "}
                        · needs reconnecting{a.last_error ? `: ${a.last_error}` : ""}
                      </span>
                    )}
                  </span>
                  <button type="button" className="danger" onClick={() => disconnect(a)} aria-label={`Disconnect ${a.handle ?? a.external_id}`}>
                    Disconnect
                  </button>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </section>
  );
}
