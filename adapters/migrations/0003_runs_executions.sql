-- 0003: what the ApprovalCoordinator needs to run playbooks exactly once.
-- A run may be started without a stored incident (by hand, or before the rule engine's
-- write lands), so its incident id is a reference by value, not a foreign key.
ALTER TABLE playbook_runs DROP CONSTRAINT IF EXISTS playbook_runs_incident_id_fkey;
ALTER TABLE playbook_runs ALTER COLUMN incident_id DROP NOT NULL;
-- The variables the plan was rendered from (incident.*, rca.*): for reports and budgets.
ALTER TABLE playbook_runs ADD COLUMN IF NOT EXISTS context JSONB NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX IF NOT EXISTS playbook_runs_state_idx ON playbook_runs (state);

-- One row per tool call a run makes, claimed *before* the call: the primary key is the
-- execution key (run, step, phase), so a second claim of the same key is refused and a step
-- is never executed twice, even across restarts or two coordinators racing.
CREATE TABLE IF NOT EXISTS step_executions (
    key           TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    step          TEXT NOT NULL,
    phase         TEXT NOT NULL CHECK (phase IN ('step', 'rollback')),
    tool          TEXT NOT NULL,
    params        JSONB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('started', 'succeeded', 'failed')),
    result        JSONB,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS step_executions_run_idx ON step_executions (run_id);
CREATE INDEX IF NOT EXISTS approvals_run_idx ON approvals (run_id);
CREATE INDEX IF NOT EXISTS audit_log_target_idx ON audit_log (target, at);
