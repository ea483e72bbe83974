-- Same tables as the PostgreSQL schema. SQLite has no uuid, timestamptz, numeric, jsonb, inet or
-- arrays: ids and JSON are TEXT, times are INTEGER microseconds since the epoch, numbers REAL,
-- lists comma-joined TEXT. Partitioning has no SQLite equivalent; the logs are plain tables.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    hashed_secret TEXT NOT NULL,
    plan          TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    is_active     INTEGER NOT NULL DEFAULT 1,
    rbac_roles    TEXT NOT NULL DEFAULT 'user',
    webhook_secret TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    archived_at   INTEGER
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    prefix       TEXT NOT NULL UNIQUE,
    hashed_key   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    rotated_from TEXT REFERENCES api_keys (id)
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE content_submissions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id),
    content_type   TEXT NOT NULL CHECK (content_type IN ('video', 'post', 'text')),
    source_url     TEXT,
    upload_id      TEXT,
    storage_key    TEXT,
    caption        TEXT,
    platform_hint  TEXT CHECK (platform_hint IN ('tiktok', 'youtube', 'instagram', 'x')),
    notify_webhook TEXT,
    status         TEXT NOT NULL CHECK (status IN ('draft', 'queued', 'processing', 'complete', 'failed')),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    archived_at    INTEGER
);

CREATE TABLE analysis_jobs (
    id               TEXT PRIMARY KEY,
    submission_id    TEXT NOT NULL UNIQUE REFERENCES content_submissions (id),
    user_id          TEXT NOT NULL REFERENCES users (id),
    status           TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'complete', 'failed', 'archived')),
    score            REAL CHECK (score BETWEEN 0 AND 100),
    confidence       REAL CHECK (confidence BETWEEN 0 AND 1),
    errors           TEXT,
    metrics          TEXT,
    moderation_flags TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    archived_at      INTEGER
);
CREATE INDEX analysis_jobs_queued ON analysis_jobs (created_at) WHERE status = 'queued';
CREATE INDEX analysis_jobs_history ON analysis_jobs (user_id, created_at DESC, id DESC);
CREATE INDEX analysis_jobs_created ON analysis_jobs (created_at DESC, id DESC);

CREATE TABLE insights (
    id              TEXT PRIMARY KEY,
    job_id          TEXT NOT NULL REFERENCES analysis_jobs (id),
    category        TEXT NOT NULL CHECK (category IN ('hook', 'pacing', 'emotion', 'storytelling', 'cta')),
    message         TEXT NOT NULL,
    recommendations TEXT NOT NULL,
    weight          REAL NOT NULL CHECK (weight BETWEEN 0 AND 1),
    created_at      INTEGER NOT NULL,
    UNIQUE (job_id, category)
);

CREATE TABLE webhook_subscriptions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    target_url TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (user_id, target_url)
);

CREATE TABLE audit_logs (
    id         TEXT PRIMARY KEY,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    ip_address TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX audit_logs_actor ON audit_logs (actor, created_at DESC);

CREATE TABLE model_runs (
    id          TEXT PRIMARY KEY,
    job_id      TEXT NOT NULL REFERENCES analysis_jobs (id),
    model_name  TEXT NOT NULL,
    latency_ms  INTEGER NOT NULL,
    token_usage TEXT,
    prompt_hash TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX model_runs_job ON model_runs (job_id);

CREATE TABLE counters (
    key           TEXT PRIMARY KEY,
    value         INTEGER NOT NULL,
    expires_at_us INTEGER NOT NULL
);

CREATE TABLE idempotency_keys (
    user_id       TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    expires_at_us INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
);
