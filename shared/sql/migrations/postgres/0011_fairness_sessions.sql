-- Whose each run is, so the local runner shares its slots fairly between users.
ALTER TABLE pipeline_runs ADD COLUMN user_id text;
UPDATE pipeline_runs r SET user_id = j.user_id::text FROM analysis_jobs j WHERE j.id::text = r.job_id;
CREATE INDEX pipeline_runs_leased ON pipeline_runs (user_id) WHERE outcome IS NULL AND lease_until_us > 0;

-- Dashboard sessions, so signing out (or an operator) ends one on the server, not just in
-- the browser. The cookie carries the id; nothing secret is kept here.
CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    key_id      uuid NOT NULL REFERENCES api_keys (id),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
