CREATE TABLE uploads (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    media_type      TEXT NOT NULL,
    declared_bytes  INTEGER NOT NULL CHECK (declared_bytes > 0),
    filename        TEXT,
    storage_key     TEXT NOT NULL UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'rejected')),
    received_bytes  INTEGER,
    rejection       TEXT,
    created_at      INTEGER NOT NULL,
    url_expires_at  INTEGER NOT NULL,
    received_at     INTEGER
);
CREATE INDEX uploads_user ON uploads (user_id, created_at DESC);
