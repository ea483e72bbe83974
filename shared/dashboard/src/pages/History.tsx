import { useEffect, useState } from "react";
import { api, type HistoryItem, type JobStatus, type Session } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { Link } from "../router";

const PAGE = 10;
const STATUSES: (JobStatus | "")[] = ["", "queued", "processing", "complete", "failed"];

/** Your jobs, newest first, a page at a time (the API's keyset cursor; earlier pages are
 * remembered so Back needs no offset). */
export function History({ session }: { session: Session }) {
  const [status, setStatus] = useState<JobStatus | "">("");
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  // The page shown, and the query it answers: while they differ, a new page is on its way.
  const [page, setPage] = useState<{ query: string; items: HistoryItem[]; next_cursor: string | null } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const cursor = cursors[cursors.length - 1];
  const query = new URLSearchParams({ limit: String(PAGE), ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) }).toString();
  const loading = page?.query !== query;

  useEffect(() => {
    setError(null);
    let current = true;
    api<{ items: HistoryItem[]; next_cursor: string | null }>("GET", `/api/v1/users/${session.user_id}/history?${query}`)
      .then((p) => current && setPage({ query, ...p }))
      .catch((e) => current && setError(e));
    // A page asked for later wins over one still on its way.
    return () => {
      current = false;
    };
  }, [session.user_id, query]);

  return (
    <section>
      <h1>History</h1>
      <div className="row card">
        <label htmlFor="status-filter">Status</label>
        <select
          id="status-filter"
          value={status}
          onChange={(e) => {
            setStatus(e.target.value as JobStatus | "");
            setCursors([null]);
          }}
        >
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s || "All"}
            </option>
          ))}
        </select>
      </div>
      {error !== null && <ErrorNote error={error} />}
      {page && (
        <div className="card" aria-busy={loading} id="history-page">
          {page.items.length === 0 ? (
            <p className="muted">Nothing here yet.</p>
          ) : (
            <table>
              <caption className="sr-only">Jobs, page {cursors.length}</caption>
              <thead>
                <tr>
                  <th scope="col">Submitted</th>
                  <th scope="col">Status</th>
                  <th scope="col">Score</th>
                </tr>
              </thead>
              <tbody>
                {page.items.map((item) => (
                  <tr key={item.job_id}>
                    <td>
                      <Link to={`/jobs/${item.job_id}`}>{new Date(item.created_at).toLocaleString()}</Link>
                    </td>
                    <td>
                      <span className={`badge ${item.status}`}>{item.status}</span>
                    </td>
                    <td>{item.score === null ? "—" : Math.round(item.score)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <nav className="row pager" aria-label="Pages">
            <button type="button" className="secondary" disabled={loading || cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
              Newer
            </button>
            <span className="muted small">Page {cursors.length}</span>
            <button type="button" className="secondary" disabled={loading || !page.next_cursor} onClick={() => setCursors([...cursors, page.next_cursor])}>
              Older
            </button>
          </nav>
        </div>
      )}
    </section>
  );
}
