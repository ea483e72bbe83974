-- Whose each run is, so the local runner shares its slots fairly between users.
ALTER TABLE pipeline_runs ADD COLUMN user_id TEXT;
UPDATE pipeline_runs SET user_id = (SELECT j.user_id FROM analysis_jobs j WHERE j.id = pipeline_runs.job_id);
CREATE INDEX pipeline_runs_leased ON pipeline_runs (user_id) WHERE outcome IS NULL AND lease_until_us > 0;

-- Dashboard sessions, so signing out (or an operator) ends one on the server, not just in
-- the browser. The cookie carries the id; nothing secret is kept here.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
