-- Connected platform accounts (issue 14's learning loop). Tokens are stored sealed (envelope
-- encryption, each bound to its row and purpose), never in the clear.
CREATE TABLE oauth_pending_grants (
    state_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    platform    TEXT NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    verifier    BLOB NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX oauth_pending_grants_user ON oauth_pending_grants (user_id, expires_at);

CREATE TABLE connected_accounts (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id),
    platform          TEXT NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    external_id       TEXT NOT NULL,
    handle            TEXT,
    followers         INTEGER CHECK (followers >= 0),
    followers_at      INTEGER,
    scopes            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('active', 'reauth_required')),
    access_token      BLOB NOT NULL,
    refresh_token     BLOB,
    token_expires_at  INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (user_id, platform, external_id)
);

-- A job's content as posted from a connected account: its counts are read at about 24 h and
-- 7 days after posting (next_check_at; NULL once done). `followers`: the author's count when
-- the post was linked, as near to posting as we know it.
CREATE TABLE tracked_posts (
    id             TEXT PRIMARY KEY,
    job_id         TEXT NOT NULL REFERENCES analysis_jobs (id),
    user_id        TEXT NOT NULL REFERENCES users (id),
    account_id     TEXT NOT NULL REFERENCES connected_accounts (id) ON DELETE CASCADE,
    platform       TEXT NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    post_id        TEXT NOT NULL,
    post_url       TEXT,
    posted_at      INTEGER NOT NULL,
    followers      INTEGER CHECK (followers >= 0),
    next_check_at  INTEGER,
    checks_done    INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    created_at     INTEGER NOT NULL,
    UNIQUE (job_id, account_id, post_id)
);
CREATE INDEX tracked_posts_due ON tracked_posts (next_check_at) WHERE next_check_at IS NOT NULL;

-- Observations read from a platform are outcomes too. SQLite cannot change a CHECK, so the
-- table is rebuilt with its rows (nothing references it).
CREATE TABLE job_outcomes_new (
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
    source       TEXT NOT NULL CHECK (source IN ('api', 'platform')),
    created_at   INTEGER NOT NULL
);
INSERT INTO job_outcomes_new SELECT id, job_id, user_id, platform, post_url, observed_at, views, likes, comments, shares, followers, source, created_at FROM job_outcomes;
DROP TABLE job_outcomes;
ALTER TABLE job_outcomes_new RENAME TO job_outcomes;
CREATE INDEX job_outcomes_job ON job_outcomes (job_id, observed_at);
