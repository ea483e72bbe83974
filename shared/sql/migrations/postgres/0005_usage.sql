-- Metering (see domain::usage). The ledger is append-only: one row per billable event, keyed
-- by (job, entry) so a retried request or stage can never write one twice. `usage_periods`
-- holds each account's running total per period, changed in the same transaction as the
-- ledger row it sums (the quota job reconciles the two).
CREATE TABLE usage_ledger (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id),
    job_id          uuid NOT NULL,
    entry           text NOT NULL CHECK (entry IN ('charge', 'adjustment', 'reversal')),
    kind            text NOT NULL CHECK (kind IN ('text', 'post', 'video')),
    units           bigint NOT NULL,
    -- Units taken from (or returned to) prepaid credits.
    credit_units    bigint NOT NULL DEFAULT 0,
    period          text NOT NULL,
    reason          text,
    created_at      timestamptz NOT NULL,
    -- Days since 1970-01-01 (UTC) of created_at: what usage is bucketed by, on both backends.
    day             bigint NOT NULL,
    UNIQUE (job_id, entry)
);
CREATE INDEX usage_ledger_user ON usage_ledger (user_id, day);
-- The quota job sums a period per account.
CREATE INDEX usage_ledger_period ON usage_ledger (period, user_id);

CREATE TABLE usage_periods (
    user_id  uuid NOT NULL REFERENCES users (id),
    period   text NOT NULL,
    used     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
);

-- Per-account terms an operator sets: an allowance instead of the plan's, and prepaid
-- credits (null: the account does not pay in advance).
CREATE TABLE usage_accounts (
    user_id             uuid PRIMARY KEY REFERENCES users (id),
    allowance_override  bigint CHECK (allowance_override >= 0),
    credits             bigint CHECK (credits >= 0),
    stripe_customer_id  text,
    updated_at          timestamptz NOT NULL
);

-- The billing outbox's state per identifier (a charge's ledger id) and action: what Stripe
-- answered. An item with no row, or a 'pending' one that is due, is sent by the next drain.
CREATE TABLE meter_exports (
    identifier     uuid NOT NULL,
    action         text NOT NULL CHECK (action IN ('event', 'cancel')),
    status         text NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'refused')),
    attempts       integer NOT NULL DEFAULT 0,
    next_at_us     bigint NOT NULL DEFAULT 0,
    last_error     text,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (identifier, action)
);

-- `usage.threshold` notices: a row with an empty target claims (user, period, threshold) once;
-- one row per subscribed target tracks that target's delivery.
CREATE TABLE usage_notices (
    user_id      uuid NOT NULL REFERENCES users (id),
    period       text NOT NULL,
    threshold    integer NOT NULL CHECK (threshold IN (80, 100)),
    target_url   text NOT NULL,
    delivery_id  uuid NOT NULL,
    status       text NOT NULL CHECK (status IN ('claimed', 'pending', 'delivered', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    next_at_us   bigint NOT NULL DEFAULT 0,
    last_error   text,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, period, threshold, target_url)
);
