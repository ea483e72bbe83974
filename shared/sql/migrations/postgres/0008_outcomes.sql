-- What a job's content actually did once posted (issue 14's learning loop): a history of
-- observations per job, never overwritten. Counts are those at `observed_at`; `followers` is
-- the author's count at posting. `source` says who reported it.
CREATE TABLE job_outcomes (
    id           uuid PRIMARY KEY,
    job_id       uuid NOT NULL REFERENCES analysis_jobs (id),
    user_id      uuid NOT NULL REFERENCES users (id),
    platform     text CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    post_url     text,
    observed_at  timestamptz NOT NULL,
    views        bigint CHECK (views >= 0),
    likes        bigint CHECK (likes >= 0),
    comments     bigint CHECK (comments >= 0),
    shares       bigint CHECK (shares >= 0),
    followers    bigint CHECK (followers >= 0),
    source       text NOT NULL CHECK (source IN ('api')),
    created_at   timestamptz NOT NULL
);
CREATE INDEX job_outcomes_job ON job_outcomes (job_id, observed_at);
