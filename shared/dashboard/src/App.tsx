import { useEffect, useState } from "react";
import { api, ApiError, setCsrf, whenSessionLost, type Session } from "./api";
import { Link, Router, useRouter } from "./router";
import { SignIn } from "./pages/SignIn";
import { Submit } from "./pages/Submit";
import { JobPage } from "./pages/JobPage";
import { Compare } from "./pages/Compare";
import { History } from "./pages/History";
import { Keys } from "./pages/Keys";
import { Webhooks } from "./pages/Webhooks";
import { Accounts } from "./pages/Accounts";
import { Usage } from "./pages/Usage";
import { Admin } from "./pages/Admin";

export function App() {
  return (
    <Router>
      <Shell />
    </Router>
  );
}

const NAV = [
  { to: "/", label: "Analyze" },
  { to: "/compare", label: "Compare" },
  { to: "/history", label: "History" },
  { to: "/usage", label: "Usage" },
  { to: "/keys", label: "API keys" },
  { to: "/webhooks", label: "Webhooks" },
  { to: "/accounts", label: "Accounts" },
];

function Shell() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [offline, setOffline] = useState(false);
  const { path } = useRouter();

  function checkSession() {
    setOffline(false);
    api<Session>("GET", "/api/v1/auth/session")
      .then(signedIn)
      .catch((e) => (e instanceof ApiError && e.code === "network" ? setOffline(true) : setSession(null)));
  }
  useEffect(checkSession, []);

  function signedIn(s: Session) {
    setCsrf(s.csrf_token);
    setSession(s);
  }

  async function signOut() {
    await api("DELETE", "/api/v1/auth/session").catch(() => {});
    setCsrf(null);
    setSession(null);
  }

  // A request refused for a lost session (a revoked key, an expired session) signs out.
  useEffect(() => whenSessionLost(() => setSession(null)), []);

  if (offline) {
    return (
      <main id="main" className="page narrow">
        <h1>You are offline</h1>
        <p>GoViralNow needs a connection to score content. Your work is on the server; nothing was lost.</p>
        <button type="button" onClick={checkSession}>
          Try again
        </button>
      </main>
    );
  }
  if (session === null) return <SignIn onSignedIn={signedIn} />;

  // While the session is being checked the frame is drawn already (nothing moves when it
  // arrives), with the page's place kept.
  if (session === undefined) {
    return (
      <>
        <TopBar session={null} onSignOut={signOut} />
        <main id="main" className="page" aria-busy="true">
          <p className="muted">Loading…</p>
        </main>
      </>
    );
  }

  const jobMatch = path.match(/^\/jobs\/([0-9a-fA-F-]{36})$/);
  let page;
  if (jobMatch) page = <JobPage jobId={jobMatch[1]} />;
  else if (path === "/" || path === "/share-target") page = <Submit session={session} />;
  else if (path === "/compare") page = <Compare />;
  else if (path === "/history") page = <History session={session} />;
  else if (path === "/usage") page = <Usage />;
  else if (path === "/keys") page = <Keys onSessionEnded={() => setSession(null)} />;
  else if (path === "/webhooks") page = <Webhooks />;
  else if (path === "/accounts") page = <Accounts />;
  else if (path === "/admin" && session.roles.includes("admin")) page = <Admin />;
  else
    page = (
      <section>
        <h1>Not found</h1>
        <p>
          There is no page at <code>{path}</code>. <Link to="/">Analyze something</Link>.
        </p>
      </section>
    );

  return (
    <>
      <TopBar session={session} onSignOut={signOut} />
      <main id="main" className="page" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

function TopBar({ session, onSignOut }: { session: Session | null; onSignOut: () => void }) {
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link to="/" className="brand">
          GoViralNow
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.map((n) => (
              <li key={n.to}>
                <Link to={n.to}>{n.label}</Link>
              </li>
            ))}
            {session?.roles.includes("admin") && (
              <li>
                <Link to="/admin">Operations</Link>
              </li>
            )}
          </ul>
        </nav>
        <div className="who">
          {session && (
            <>
              <span className="muted" title={session.email}>
                {session.email} · {session.plan}
              </span>
              <button type="button" className="link" onClick={onSignOut}>
                Sign out
              </button>
            </>
          )}
        </div>
      </header>
    </>
  );
}
