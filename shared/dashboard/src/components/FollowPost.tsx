import { useCallback, useEffect, useState } from "react";
import { api, type Account, type Observation, type TrackedPost } from "../api";
import { useList } from "../useList";
import { ErrorNote } from "./ErrorNote";
import { Link } from "../router";

const when = (at: string) => new Date(at).toLocaleString();
const count = (n: number | null) => (n === null ? "—" : n.toLocaleString());

/** Links the published post to this analysis: it is read now, and at about 24 hours and 7
 * days after posting, and what it did comes back as outcomes beside the prediction. */
export function FollowPost({ jobId }: { jobId: string }) {
  const accounts = useList<Account>("/api/v1/accounts");
  const posts = useList<TrackedPost>(`/api/v1/analyze/${jobId}/posts`);
  const [observations, setObservations] = useState<Observation[] | null>(null);
  const [accountId, setAccountId] = useState("");
  const [postUrl, setPostUrl] = useState("");
  const active = (accounts.items ?? []).filter((a) => a.status === "active");
  const chosen = accountId || active[0]?.account_id || "";

  const loadObservations = useCallback(
    () =>
      api<{ observations: Observation[] }>("GET", `/api/v1/analyze/${jobId}/outcome`)
        .then((r) => setObservations(r.observations))
        .catch(() => setObservations(null)),
    [jobId],
  );
  const followed = posts.items?.length ?? 0;
  useEffect(() => {
    if (followed > 0) loadObservations();
  }, [followed, loadObservations]);

  const follow = (e: React.FormEvent) => {
    e.preventDefault();
    posts.act(async () => {
      await api("POST", `/api/v1/analyze/${jobId}/posts`, { account_id: chosen, post_url: postUrl.trim() });
      setPostUrl("");
    });
  };

  return (
    <div className="card stack">
      <h2>Follow the published post</h2>
      {posts.error !== null && <ErrorNote error={posts.error} />}
      {accounts.items !== null && active.length === 0 ? (
        <p className="muted">
          <Link to="/accounts">Connect an account</Link> to follow how this post does: it is read at about 24 hours and 7 days.
        </p>
      ) : (
        <form className="row" onSubmit={follow}>
          <label>
            Account
            <select value={chosen} onChange={(e) => setAccountId(e.target.value)}>
              {active.map((a) => (
                <option key={a.account_id} value={a.account_id}>
                  {a.platform} · {a.handle ?? a.external_id}
                </option>
              ))}
            </select>
          </label>
          <label className="grow">
            Post address
            <input type="url" required maxLength={2048} value={postUrl} onChange={(e) => setPostUrl(e.target.value)} placeholder="https://…" />
          </label>
          <button type="submit" disabled={!chosen || !postUrl.trim()}>
            Follow
          </button>
        </form>
      )}
      {posts.items && posts.items.length > 0 && (
        <table>
          <caption className="muted small">Followed posts</caption>
          <thead>
            <tr>
              <th scope="col">Post</th>
              <th scope="col">Posted</th>
              <th scope="col">Readings</th>
              <th scope="col">Next reading</th>
            </tr>
          </thead>
          <tbody>
            {posts.items.map((p) => (
              <tr key={p.tracked_post_id}>
                <td>
                  {p.platform} ·{" "}
                  {p.post_url ? (
                    <a href={p.post_url} rel="noreferrer noopener" target="_blank">
                      {p.post_id}
                    </a>
                  ) : (
                    p.post_id
                  )}
                </td>
                <td>{when(p.posted_at)}</td>
                <td>{p.checks_done}</td>
                <td>{p.next_check_at ? when(p.next_check_at) : p.last_error ? `ended: ${p.last_error}` : "done"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {observations && observations.length > 0 && (
        <table>
          <caption className="muted small">What the post did</caption>
          <thead>
            <tr>
              <th scope="col">Read</th>
              <th scope="col">Views</th>
              <th scope="col">Likes</th>
              <th scope="col">Comments</th>
              <th scope="col">Shares</th>
              <th scope="col">From</th>
            </tr>
          </thead>
          <tbody>
            {observations.map((o) => (
              <tr key={o.outcome_id}>
                <td>{when(o.observed_at)}</td>
                <td>{count(o.views)}</td>
                <td>{count(o.likes)}</td>
                <td>{count(o.comments)}</td>
                <td>{count(o.shares)}</td>
                <td>{o.source === "platform" ? "the platform" : "reported"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
