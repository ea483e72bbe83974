-- Time crosses the wire as microseconds since the epoch (the SQLite schema stores exactly that);
-- these two inline-able helpers convert, so one query text serves both stores.
CREATE FUNCTION gv_ts(us bigint) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT timestamptz 'epoch' + us * interval '1 microsecond' $$;
CREATE FUNCTION gv_us(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;
-- Lists cross the wire comma-joined (values are closed vocabularies without commas).
CREATE FUNCTION gv_list(v text) RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE WHEN v = '' THEN '{}'::text[] ELSE string_to_array(v, ',') END $$;
CREATE FUNCTION gv_join(v text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string(v, ',') $$;

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    hashed_secret text NOT NULL,
    plan          text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
    is_active     boolean NOT NULL DEFAULT true,
    rbac_roles    text[] NOT NULL DEFAULT '{user}',
    webhook_secret text NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    archived_at   timestamptz
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    prefix       text NOT NULL UNIQUE,
    hashed_key   text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz,
    last_used_at timestamptz,
    rotated_from uuid REFERENCES api_keys (id)
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

CREATE TABLE content_submissions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id),
    content_type   text NOT NULL CHECK (content_type IN ('video', 'post', 'text')),
    source_url     text,
    upload_id      uuid,
    storage_key    text,
    caption        text,
    platform_hint  text CHECK (platform_hint IN ('tiktok', 'youtube', 'instagram', 'x')),
    notify_webhook text,
    status         text NOT NULL CHECK (status IN ('draft', 'queued', 'processing', 'complete', 'failed')),
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    archived_at    timestamptz
);

CREATE TABLE analysis_jobs (
    id               uuid PRIMARY KEY,
    submission_id    uuid NOT NULL UNIQUE REFERENCES content_submissions (id),
    user_id          uuid NOT NULL REFERENCES users (id),
    status           text NOT NULL CHECK (status IN ('queued', 'processing', 'complete', 'failed', 'archived')),
    score            numeric(5, 2) CHECK (score BETWEEN 0 AND 100),
    confidence       numeric(3, 2) CHECK (confidence BETWEEN 0 AND 1),
    errors           jsonb,
    metrics          jsonb,
    moderation_flags jsonb,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    archived_at      timestamptz
);
-- The pipeline's sweep reads only queued jobs; the partial index stays tiny.
CREATE INDEX analysis_jobs_queued ON analysis_jobs (created_at) WHERE status = 'queued';
CREATE INDEX analysis_jobs_history ON analysis_jobs (user_id, created_at DESC, id DESC);
CREATE INDEX analysis_jobs_created ON analysis_jobs (created_at DESC, id DESC);

CREATE TABLE insights (
    id              uuid PRIMARY KEY,
    job_id          uuid NOT NULL REFERENCES analysis_jobs (id),
    category        text NOT NULL CHECK (category IN ('hook', 'pacing', 'emotion', 'storytelling', 'cta')),
    message         text NOT NULL,
    recommendations jsonb NOT NULL,
    weight          numeric(3, 2) NOT NULL CHECK (weight BETWEEN 0 AND 1),
    created_at      timestamptz NOT NULL,
    -- One insight per category per job: a redelivered inference cannot double-write.
    UNIQUE (job_id, category)
);

CREATE TABLE webhook_subscriptions (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users (id),
    target_url text NOT NULL,
    secret     text NOT NULL,
    events     text[] NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    UNIQUE (user_id, target_url)
);

-- Append-only logs, partitioned by month so old months can be detached and dropped cheaply.
CREATE TABLE audit_logs (
    id         uuid NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    payload    jsonb NOT NULL,
    ip_address inet,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE audit_logs_default PARTITION OF audit_logs DEFAULT;
CREATE INDEX audit_logs_actor ON audit_logs (actor, created_at DESC);

CREATE TABLE model_runs (
    id          uuid NOT NULL,
    job_id      uuid NOT NULL REFERENCES analysis_jobs (id),
    model_name  text NOT NULL,
    latency_ms  bigint NOT NULL,
    token_usage jsonb,
    prompt_hash text,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE model_runs_default PARTITION OF model_runs DEFAULT;
CREATE INDEX model_runs_job ON model_runs (job_id);

-- Creates the monthly partitions of `parent` for `months` months from the month of `start`.
-- Months that already exist are skipped.
CREATE FUNCTION gv_ensure_month_partitions(parent text, start timestamptz, months int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    m timestamptz := date_trunc('month', start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('%s_y%sm%s', parent, to_char(m AT TIME ZONE 'UTC', 'YYYY'), to_char(m AT TIME ZONE 'UTC', 'MM'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               name, parent, m, m + interval '1 month');
            EXCEPTION WHEN check_violation THEN
                -- Rows of that month already sit in the default partition; leave them there.
                RAISE NOTICE 'partition % not created: default partition holds its rows', name;
            END;
        END IF;
        m := m + interval '1 month';
    END LOOP;
END $$;

-- Hot counters: rate limits and usage (DynamoDB on AWS; this table when no DynamoDB is configured).
CREATE TABLE counters (
    key           text PRIMARY KEY,
    value         bigint NOT NULL,
    expires_at_us bigint NOT NULL
);

CREATE TABLE idempotency_keys (
    user_id       text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    job_id        text NOT NULL,
    expires_at_us bigint NOT NULL,
    PRIMARY KEY (user_id, key)
);
