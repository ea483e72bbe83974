-- Connected platform accounts (issue 14's learning loop). Tokens are stored sealed (envelope
-- encryption, each bound to its row and purpose), never in the clear.
CREATE TABLE oauth_pending_grants (
    state_hash  text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    platform    text NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    verifier    bytea NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX oauth_pending_grants_user ON oauth_pending_grants (user_id, expires_at);

CREATE TABLE connected_accounts (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users (id),
    platform          text NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    external_id       text NOT NULL,
    handle            text,
    followers         bigint CHECK (followers >= 0),
    followers_at      timestamptz,
    scopes            text NOT NULL,
    status            text NOT NULL CHECK (status IN ('active', 'reauth_required')),
    access_token      bytea NOT NULL,
    refresh_token     bytea,
    token_expires_at  timestamptz,
    last_error        text,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    UNIQUE (user_id, platform, external_id)
);

-- A job's content as posted from a connected account: its counts are read at about 24 h and
-- 7 days after posting (next_check_at; NULL once done). `followers`: the author's count when
-- the post was linked, as near to posting as we know it.
CREATE TABLE tracked_posts (
    id             uuid PRIMARY KEY,
    job_id         uuid NOT NULL REFERENCES analysis_jobs (id),
    user_id        uuid NOT NULL REFERENCES users (id),
    account_id     uuid NOT NULL REFERENCES connected_accounts (id) ON DELETE CASCADE,
    platform       text NOT NULL CHECK (platform IN ('tiktok', 'youtube', 'instagram', 'x')),
    post_id        text NOT NULL,
    post_url       text,
    posted_at      timestamptz NOT NULL,
    followers      bigint CHECK (followers >= 0),
    next_check_at  timestamptz,
    checks_done    integer NOT NULL DEFAULT 0,
    last_error     text,
    created_at     timestamptz NOT NULL,
    UNIQUE (job_id, account_id, post_id)
);
CREATE INDEX tracked_posts_due ON tracked_posts (next_check_at) WHERE next_check_at IS NOT NULL;

-- Observations read from a platform are outcomes too.
ALTER TABLE job_outcomes DROP CONSTRAINT job_outcomes_source_check;
ALTER TABLE job_outcomes ADD CONSTRAINT job_outcomes_source_check CHECK (source IN ('api', 'platform'));
