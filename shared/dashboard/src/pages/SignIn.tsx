import { useState, type FormEvent } from "react";
import { api, ApiError, type Session } from "../api";
import { ErrorNote } from "../components/ErrorNote";

/** The API key is sent once, exchanged for a session cookie, and not kept by the page. */
export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api<Session>("POST", "/api/v1/auth/session", { api_key: key.trim() });
      setKey("");
      onSignedIn(session);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" className="page narrow">
      <h1>Sign in to GoViralNow</h1>
      <p className="muted">
        Use an API key from your account. It is exchanged for a session and is not stored in this browser.
      </p>
      <form onSubmit={submit} className="card stack">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          value={key}
          onChange={(e) => setKey(e.target.value)}
          aria-describedby={error ? "signin-error" : undefined}
        />
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && <ErrorNote id="signin-error" error={error} />}
      </form>
    </main>
  );
}
