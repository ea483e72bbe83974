import { useEffect, useState } from "react";
import { api, ApiError } from "../api";
import { ErrorNote } from "../components/ErrorNote";
import { Sparkline } from "../components/Sparkline";
import { Models } from "../components/Models";

interface Series {
  name: string;
  kind: "counter" | "histogram" | "gauge";
  labels: Record<string, string>;
  value: number;
  sum: number | null;
  buckets: [number, number][] | null;
}
interface Sample {
  at: number;
  series: Series[];
}

const EVERY_MS = 5_000;
const KEEP = 60; // five minutes of samples

const key = (s: Series) => s.name + JSON.stringify(s.labels);

/** The quantile `q` of a histogram's observations, from its cumulative buckets (the upper
 * bound of the bucket it falls in, as Prometheus's histogram_quantile does without
 * interpolation). */
function quantile(buckets: [number, number][], count: number, q: number): number | null {
  if (!count) return null;
  const rank = q * count;
  const hit = buckets.find(([, c]) => c >= rank);
  return hit ? hit[0] : Infinity;
}

/** Per-second rate of a counter (or of a histogram's count) between consecutive samples. */
function rates(samples: Sample[], id: string): number[] {
  const out: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const before = samples[i - 1].series.find((s) => key(s) === id)?.value ?? 0;
    const now = samples[i].series.find((s) => key(s) === id)?.value ?? 0;
    out.push(Math.max(0, now - before) / ((samples[i].at - samples[i - 1].at) / 1000));
  }
  return out;
}

function ms(x: number | null): string {
  if (x === null) return "—";
  if (!isFinite(x)) return "> 60 s";
  return x >= 1000 ? `${(x / 1000).toFixed(x >= 10_000 ? 0 : 1)} s` : `≤ ${x} ms`;
}

/** Operational metrics of this server (admins): read every 5 s, charted over five minutes. */
export function Admin() {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let stopped = false;
    const read = () =>
      api<{ series: Series[] }>("GET", "/metrics?format=json")
        .then((r) => {
          if (stopped) return;
          if (!Array.isArray(r?.series)) throw new ApiError(404, "not_available", "This deployment's metrics are in CloudWatch (namespace GoViralNow), not here.");
          setError(null);
          setSamples((all) => [...all, { at: Date.now(), series: r.series }].slice(-KEEP));
        })
        .catch((e) => !stopped && setError(e));
    read();
    const timer = setInterval(read, EVERY_MS);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, []);

  const latest = samples[samples.length - 1]?.series ?? [];
  const of = (name: string) => latest.filter((s) => s.name === name);

  // Requests per route: rate over time, errors, and latency quantiles.
  const routes = new Map<string, { total: number; errors: number; ids: string[] }>();
  for (const s of of("goviral_http_requests_total")) {
    const route = `${s.labels.method} ${s.labels.route}`;
    const r = routes.get(route) ?? { total: 0, errors: 0, ids: [] };
    r.total += s.value;
    if (Number(s.labels.status) >= 500) r.errors += s.value;
    r.ids.push(key(s));
    routes.set(route, r);
  }
  const routeRows = [...routes.entries()].sort((a, b) => b[1].total - a[1].total);
  const latencyOf = (route: string) => of("goviral_http_request_duration_ms").find((s) => `${s.labels.method} ${s.labels.route}` === route);
  const rateOf = (ids: string[]) => {
    const per = ids.map((id) => rates(samples, id));
    return per.length ? per[0].map((_, i) => per.reduce((sum, r) => sum + (r[i] ?? 0), 0)) : [];
  };

  return (
    <section>
      <h1>Operations</h1>
      <p className="muted">This server's metrics, read every 5 seconds (Prometheus scrapes the same at /metrics). On AWS they are in CloudWatch under GoViralNow.</p>
      {error !== null && <ErrorNote error={error} />}

      <div className="card">
        <h2>Requests by route</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Route</th>
              <th scope="col">Requests</th>
              <th scope="col">Server errors</th>
              <th scope="col">p50 / p95</th>
              <th scope="col">Per second, last 5 min</th>
            </tr>
          </thead>
          <tbody>
            {routeRows.map(([route, r]) => {
              const h = latencyOf(route);
              return (
                <tr key={route}>
                  <td>
                    <code>{route}</code>
                  </td>
                  <td>{r.total}</td>
                  <td>{r.errors}</td>
                  <td>{h?.buckets ? `${ms(quantile(h.buckets, h.value, 0.5))} / ${ms(quantile(h.buckets, h.value, 0.95))}` : "—"}</td>
                  <td>
                    <Sparkline values={rateOf(r.ids)} label={`${route}: requests per second`} />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <div className="card">
        <h2>Pipeline</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Stage</th>
              <th scope="col">Outcome</th>
              <th scope="col">Runs</th>
              <th scope="col">p50 / p95</th>
            </tr>
          </thead>
          <tbody>
            {of("goviral_stage_duration_ms").map((s) => (
              <tr key={key(s)}>
                <td>{s.labels.stage}</td>
                <td>
                  <span className={`badge ${s.labels.outcome === "ok" ? "complete" : "failed"}`}>{s.labels.outcome}</span>
                </td>
                <td>{s.value}</td>
                <td>{s.buckets ? `${ms(quantile(s.buckets, s.value, 0.5))} / ${ms(quantile(s.buckets, s.value, 0.95))}` : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <dl className="facts">
          {of("goviral_queue_depth").map((s) => (
            <div key={key(s)}>
              <dt>Jobs {s.labels.status}</dt>
              <dd>
                {s.value} <Sparkline values={samples.map((x) => x.series.find((y) => key(y) === key(s))?.value ?? 0)} label={`jobs ${s.labels.status} over time`} />
              </dd>
            </div>
          ))}
          {of("goviral_live_streams").map((s) => (
            <div key={key(s)}>
              <dt>Live streams</dt>
              <dd>{s.value}</dd>
            </div>
          ))}
          {of("goviral_model_latency_ms").map((s) => (
            <div key={key(s)}>
              <dt>Model {s.labels.model}</dt>
              <dd>p95 {s.buckets ? ms(quantile(s.buckets, s.value, 0.95)) : "—"}</dd>
            </div>
          ))}
          {of("goviral_webhook_deliveries_total").map((s) => (
            <div key={key(s)}>
              <dt>Webhooks {s.labels.outcome}</dt>
              <dd>{s.value}</dd>
            </div>
          ))}
        </dl>
      </div>

      <Models />
    </section>
  );
}
