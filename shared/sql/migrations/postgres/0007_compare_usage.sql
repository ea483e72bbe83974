-- Comparisons are metered like analyses: a ledger entry of kind 'compare', keyed by the
-- comparison's id in job_id (a comparison has no job).
ALTER TABLE usage_ledger DROP CONSTRAINT usage_ledger_kind_check;
ALTER TABLE usage_ledger ADD CONSTRAINT usage_ledger_kind_check CHECK (kind IN ('text', 'post', 'video', 'compare'));
