-- Metering (see domain::usage). The ledger is append-only: one row per billable event, keyed
-- by (job, entry) so a retried request or stage can never write one twice. `usage_periods`
-- holds each account's running total per period, changed in the same transaction as the
-- ledger row it sums (the quota job reconciles the two).
CREATE TABLE usage_ledger (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    job_id          TEXT NOT NULL,
    entry           TEXT NOT NULL CHECK (entry IN ('charge', 'adjustment', 'reversal')),
    kind            TEXT NOT NULL CHECK (kind IN ('text', 'post', 'video')),
    units           INTEGER NOT NULL,
    -- Units taken from (or returned to) prepaid credits.
    credit_units    INTEGER NOT NULL DEFAULT 0,
    period          TEXT NOT NULL,
    reason          TEXT,
    created_at      INTEGER NOT NULL,
    -- Days since 1970-01-01 (UTC) of created_at: what usage is bucketed by, on both backends.
    day             INTEGER NOT NULL,
    UNIQUE (job_id, entry)
);
CREATE INDEX usage_ledger_user ON usage_ledger (user_id, day);
-- The quota job sums a period per account.
CREATE INDEX usage_ledger_period ON usage_ledger (period, user_id);

CREATE TABLE usage_periods (
    user_id  TEXT NOT NULL REFERENCES users (id),
    period   TEXT NOT NULL,
    used     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, period)
);

-- Per-account terms an operator sets: an allowance instead of the plan's, and prepaid
-- credits (null: the account does not pay in advance).
CREATE TABLE usage_accounts (
    user_id             TEXT PRIMARY KEY REFERENCES users (id),
    allowance_override  INTEGER CHECK (allowance_override >= 0),
    credits             INTEGER CHECK (credits >= 0),
    stripe_customer_id  TEXT,
    updated_at          INTEGER NOT NULL
);

-- The billing outbox's state per identifier (a charge's ledger id) and action: what Stripe
-- answered. An item with no row, or a 'pending' one that is due, is sent by the next drain.
CREATE TABLE meter_exports (
    identifier     TEXT NOT NULL,
    action         TEXT NOT NULL CHECK (action IN ('event', 'cancel')),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'skipped', 'refused')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_at_us     INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (identifier, action)
);

-- `usage.threshold` notices: a row with an empty target claims (user, period, threshold) once;
-- one row per subscribed target tracks that target's delivery.
CREATE TABLE usage_notices (
    user_id      TEXT NOT NULL REFERENCES users (id),
    period       TEXT NOT NULL,
    threshold    INTEGER NOT NULL CHECK (threshold IN (80, 100)),
    target_url   TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('claimed', 'pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at_us   INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (user_id, period, threshold, target_url)
);
