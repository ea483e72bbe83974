-- The model registry (issue 14): every trained model version, its artifact in the blob store
-- (checked by digest), what it was trained from and by which code, its gate metrics beside
-- the serving model's on the same gate set, and its state:
-- candidate → approved (or rejected) → serving → retired. One version serves per model name.
CREATE TABLE model_versions (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL,
    version             integer NOT NULL,
    state               text NOT NULL CHECK (state IN ('candidate', 'approved', 'rejected', 'serving', 'retired')),
    artifact_key        text NOT NULL,
    artifact_sha256     text NOT NULL,
    artifact_bytes      bigint NOT NULL,
    training_data_hash  text NOT NULL,
    code_version        text NOT NULL,
    metrics             jsonb NOT NULL,
    gate_passed         boolean NOT NULL,
    created_at          timestamptz NOT NULL,
    decided_by          text,
    decided_at          timestamptz,
    decision_note       text,
    overridden          boolean NOT NULL DEFAULT false,
    serving_since       timestamptz,
    UNIQUE (name, version)
);
CREATE UNIQUE INDEX model_versions_one_serving ON model_versions (name) WHERE state = 'serving';

-- Which registered version scored (null before the registry: the built-in model).
ALTER TABLE model_runs ADD COLUMN model_version text;
