-- Files clients put straight into the blob store with a signed URL (see domain::uploads).
CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    media_type      text NOT NULL,
    declared_bytes  bigint NOT NULL CHECK (declared_bytes > 0),
    filename        text,
    storage_key     text NOT NULL UNIQUE,
    status          text NOT NULL CHECK (status IN ('pending', 'ready', 'rejected')),
    received_bytes  bigint,
    rejection       text,
    created_at      timestamptz NOT NULL,
    url_expires_at  timestamptz NOT NULL,
    received_at     timestamptz
);
CREATE INDEX uploads_user ON uploads (user_id, created_at DESC);
