-- A job's progress as its live stream (GET /api/v1/analyze/{id}/events) tells it: one row per
-- step, numbered from 1 per job (the stream's event ids). Each step but `progress` happens
-- once per job, so a stage that is retried is not told twice.
CREATE TABLE job_events (
    job_id      TEXT NOT NULL REFERENCES analysis_jobs (id),
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    kind        TEXT NOT NULL CHECK (kind IN ('queued', 'moderation', 'extraction', 'progress', 'inference', 'complete', 'failed')),
    data        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX job_events_once ON job_events (job_id, kind) WHERE kind <> 'progress';
