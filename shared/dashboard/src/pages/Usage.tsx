import { useEffect, useState } from "react";
import { api, type UsageBucket, type UsageCurrent } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { UsageChart } from "../components/UsageChart";

const DAYS = 30;

export function Usage() {
  const [current, setCurrent] = useState<UsageCurrent | null>(null);
  const [buckets, setBuckets] = useState<UsageBucket[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const from = new Date(Date.now() - (DAYS - 1) * 86_400_000).toISOString().slice(0, 10);
    Promise.all([
      api<UsageCurrent>("GET", "/api/v1/usage/current"),
      api<{ buckets: UsageBucket[] }>("GET", `/api/v1/usage?granularity=day&from=${from}`),
    ])
      .then(([c, u]) => {
        setCurrent(c);
        setBuckets(u.buckets);
      })
      .catch(setError);
  }, []);

  return (
    <section>
      <h1>Usage</h1>
      {error !== null && <ErrorNote error={error} />}
      {current && (
        <div className="card stack">
          <h2>
            This month ({current.period}), {current.plan} plan
          </h2>
          <label htmlFor="allowance">
            {current.used.toLocaleString()} of {current.allowance.toLocaleString()} units used · {current.remaining.toLocaleString()} left
          </label>
          <meter id="allowance" min={0} max={current.allowance} high={current.allowance * 0.8} optimum={0} value={Math.min(current.used, current.allowance)}>
            {current.used}
          </meter>
          <p className="muted small">
            Resets {new Date(current.period_end).toLocaleDateString()}.{" "}
            {current.hard_cap
              ? "Past the allowance, submissions are refused until then."
              : `Past it, each unit is billed at $${(current.overage_cents_per_unit / 100).toFixed(2)}${current.overage_units ? ` (${current.overage_units} so far)` : ""}.`}
            {current.credits !== null && ` Prepaid credits left: ${current.credits}.`}
          </p>
          <p className="muted small">A text or post is 1 unit, a video 1 unit per started minute, a comparison 1 unit.</p>
        </div>
      )}
      {buckets && (
        <div className="card">
          <h2>Last {DAYS} days</h2>
          <UsageChart buckets={buckets} days={DAYS} />
        </div>
      )}
    </section>
  );
}
