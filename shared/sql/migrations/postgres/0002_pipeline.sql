-- Webhook deliveries: one row per job, target and event; the dead ones are the dead-letter list.
CREATE TABLE webhook_deliveries (
    id         uuid PRIMARY KEY,
    job_id     uuid NOT NULL REFERENCES analysis_jobs (id),
    target_url text NOT NULL,
    event      text NOT NULL,
    status     text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts   integer NOT NULL DEFAULT 0,
    last_error text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (job_id, target_url, event)
);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (updated_at DESC) WHERE status = 'dead';

-- The local runner's executions (Step Functions keeps these itself on AWS).
CREATE TABLE pipeline_runs (
    job_id         text PRIMARY KEY,
    state          text NOT NULL,
    data           text NOT NULL,
    attempt        integer NOT NULL DEFAULT 0,
    next_run_at_us bigint NOT NULL,
    lease_until_us bigint NOT NULL DEFAULT 0,
    outcome        text,
    created_at_us  bigint NOT NULL,
    updated_at_us  bigint NOT NULL
);
CREATE INDEX pipeline_runs_due ON pipeline_runs (next_run_at_us) WHERE outcome IS NULL;

-- Measured completion times feed the estimate in the submit response.
CREATE INDEX analysis_jobs_completed ON analysis_jobs (completed_at DESC) WHERE status = 'complete';
