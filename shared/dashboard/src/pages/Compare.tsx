import { useState, type FormEvent } from "react";
import { api, PLATFORMS, type Comparison, type Platform } from "../api";
import { ErrorNote } from "../components/ErrorNote";

const MIN = 2;
const MAX = 10;

export function Compare() {
  const [variants, setVariants] = useState<string[]>(["", "", ""]);
  const [platform, setPlatform] = useState<Platform | "">("");
  const [result, setResult] = useState<Comparison | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const filled = variants.map((v) => v.trim()).filter(Boolean);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body: Record<string, unknown> = { variants: filled };
      if (platform) body.platform_hint = platform;
      setResult(await api<Comparison>("POST", "/api/v1/compare", body, { "idempotency-key": crypto.randomUUID() }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <section>
      <h1>Compare variants</h1>
      <p className="muted">Paste 2 to 10 versions of one caption or headline: they are ranked at once, each with the chance it beats the next and why. One unit of usage.</p>
      <form className="card stack" onSubmit={submit}>
        {variants.map((v, i) => (
          <div key={i} className="stack">
            <label htmlFor={`variant-${i}`}>Variant {i + 1}</label>
            <div className="row">
              <input
                id={`variant-${i}`}
                className="grow"
                value={v}
                maxLength={10_000}
                onChange={(e) => setVariants(variants.map((x, j) => (j === i ? e.target.value : x)))}
              />
              {variants.length > MIN && (
                <button type="button" className="secondary" aria-label={`Remove variant ${i + 1}`} onClick={() => setVariants(variants.filter((_, j) => j !== i))}>
                  Remove
                </button>
              )}
            </div>
          </div>
        ))}
        <div className="row">
          {variants.length < MAX && (
            <button type="button" className="secondary" onClick={() => setVariants([...variants, ""])}>
              Add a variant
            </button>
          )}
          <label htmlFor="compare-platform" className="sr-only">
            Platform
          </label>
          <select id="compare-platform" value={platform} onChange={(e) => setPlatform(e.target.value as Platform | "")}>
            <option value="">Any platform</option>
            {PLATFORMS.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
          <button type="submit" disabled={busy || filled.length < MIN}>
            {busy ? "Ranking…" : "Rank them"}
          </button>
        </div>
        {error !== null && <ErrorNote error={error} />}
      </form>

      {result && (
        <div className="card" aria-live="polite">
          <h2>Ranking</h2>
          <table className="ranking">
            <caption className="sr-only">Variants, strongest first</caption>
            <thead>
              <tr>
                <th scope="col">Rank</th>
                <th scope="col">Variant</th>
                <th scope="col">Score</th>
                <th scope="col">Beats the next</th>
              </tr>
            </thead>
            <tbody>
              {result.ranking.map((r) => (
                <tr key={r.index}>
                  <td>{r.rank}</td>
                  <td>
                    <p className="variant-text">{r.text}</p>
                    {r.reasons.length > 0 && (
                      <ul className="fixes small">
                        {r.reasons.map((reason, i) => (
                          <li key={i}>{reason}</li>
                        ))}
                      </ul>
                    )}
                  </td>
                  <td>{Math.round(r.score)}</td>
                  <td>{r.p_beats_next === null ? "—" : `${Math.round(r.p_beats_next * 100)}%`}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className="muted small">Model {result.model}. Probabilities are calibrated on real headline A/B tests.</p>
        </div>
      )}
    </section>
  );
}
