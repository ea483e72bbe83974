-- Comparisons are metered like analyses: a ledger entry of kind 'compare', keyed by the
-- comparison's id in job_id (a comparison has no job). SQLite cannot change a CHECK, so the
-- table is rebuilt with its rows (nothing references it).
CREATE TABLE usage_ledger_new (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    job_id          TEXT NOT NULL,
    entry           TEXT NOT NULL CHECK (entry IN ('charge', 'adjustment', 'reversal')),
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'post', 'video', 'compare')),
    units           INTEGER NOT NULL,
    credit_units    INTEGER NOT NULL DEFAULT 0,
    period          TEXT NOT NULL,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    day             INTEGER NOT NULL,
    UNIQUE (job_id, entry)
);
INSERT INTO usage_ledger_new (id, user_id, job_id, entry, kind, units, credit_units, period, reason, created_at, day)
    SELECT id, user_id, job_id, entry, kind, units, credit_units, period, reason, created_at, day FROM usage_ledger;
DROP TABLE usage_ledger;
ALTER TABLE usage_ledger_new RENAME TO usage_ledger;
CREATE INDEX usage_ledger_user ON usage_ledger (user_id, day);
CREATE INDEX usage_ledger_period ON usage_ledger (period, user_id);
