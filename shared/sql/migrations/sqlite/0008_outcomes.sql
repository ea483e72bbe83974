-- What a job's content actually did once posted (issue 14's learning loop): a history of
-- observations per job, never overwritten. Counts are those at `observed_at`; `followers` is
-- the author's count at posting. `source` says who reported it.
CREATE TABLE job_outcomes (
    id           TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL REFERENCES analysis_jobs (id),
    user_id      TEXT NOT NULL REFERENCES users (id),
    platform     TEXT CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    post_url     TEXT,
    observed_at  INTEGER NOT NULL,
    views        INTEGER CHECK (views >= 0),
    likes        INTEGER CHECK (likes >= 0),
    comments     INTEGER CHECK (comments >= 0),
    shares       INTEGER CHECK (shares >= 0),
    followers    INTEGER CHECK (followers >= 0),
    source       TEXT NOT NULL CHECK (source IN ('api')),
    created_at   INTEGER NOT NULL
);
CREATE INDEX job_outcomes_job ON job_outcomes (job_id, observed_at);
