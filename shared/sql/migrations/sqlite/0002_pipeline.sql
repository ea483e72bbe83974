CREATE TABLE webhook_deliveries (
    id         TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES analysis_jobs (id),
    target_url TEXT NOT NULL,
    event      TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (job_id, target_url, event)
);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (updated_at DESC) WHERE status = 'dead';

CREATE TABLE pipeline_runs (
    job_id         TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    data           TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    next_run_at_us INTEGER NOT NULL,
    lease_until_us INTEGER NOT NULL DEFAULT 0,
    outcome        TEXT,
    created_at_us  INTEGER NOT NULL,
    updated_at_us  INTEGER NOT NULL
);
CREATE INDEX pipeline_runs_due ON pipeline_runs (next_run_at_us) WHERE outcome IS NULL;

-- Measured completion times feed the estimate in the submit response.
CREATE INDEX analysis_jobs_completed ON analysis_jobs (completed_at DESC) WHERE status = 'complete';
