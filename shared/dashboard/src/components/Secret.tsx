import { useState } from "react";

/** A secret shown once (a new API key, a webhook secret), with a copy button. */
export function Secret({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="card secret" role="status">
      <p>
        <strong>{label}.</strong> Copy it now: it will not be shown again.
      </p>
      <div className="row">
        <input aria-label={label} readOnly value={value} className="grow mono" onFocus={(e) => e.target.select()} />
        <button
          type="button"
          className="secondary"
          onClick={() => navigator.clipboard?.writeText(value).then(() => setCopied(true), () => setCopied(false))}
        >
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" onClick={onDone}>
          Done
        </button>
      </div>
    </div>
  );
}
