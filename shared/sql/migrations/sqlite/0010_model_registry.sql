-- The model registry (issue 14): every trained model version, its artifact in the blob store
-- (checked by digest), what it was trained from and by which code, its gate metrics beside
-- the serving model's on the same gate set, and its state:
-- candidate → approved (or rejected) → serving → retired. One version serves per model name.
CREATE TABLE model_versions (
    id                  TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    version             INTEGER NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('candidate', 'approved', 'rejected', 'serving', 'retired')),
    artifact_key        TEXT NOT NULL,
    artifact_sha256     TEXT NOT NULL,
    artifact_bytes      INTEGER NOT NULL,
    training_data_hash  TEXT NOT NULL,
    code_version        TEXT NOT NULL,
    metrics             TEXT NOT NULL,
    gate_passed         INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    decided_by          TEXT,
    decided_at          INTEGER,
    decision_note       TEXT,
    overridden          INTEGER NOT NULL DEFAULT 0,
    serving_since       INTEGER,
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX model_versions_one_serving ON model_versions (name) WHERE state = 'serving';

-- Which registered version scored (null before the registry: the built-in model).
ALTER TABLE model_runs ADD COLUMN model_version TEXT;
