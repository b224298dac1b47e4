-- The change set comes before the approvers (issue 8): a request's deployment row is created at
-- submission and first only prepares the change set; approvals bind to its ARN.

-- What the change does, as flags derived from the change set and the template diff.
ALTER TABLE service_requests ADD COLUMN risk_flags_json TEXT NOT NULL DEFAULT '[]';
-- How the request was released: 'approvals', 'auto' (rules allowed it) or 'emergency'.
ALTER TABLE service_requests ADD COLUMN approval_mode TEXT NOT NULL DEFAULT 'approvals';
-- Break-glass: who released it, why, and who reviewed it after the fact.
ALTER TABLE service_requests ADD COLUMN emergency_json TEXT;

-- An approval names the change set it approved; its content_hash binds that ARN too.
ALTER TABLE approvals ADD COLUMN change_set_arn TEXT;
-- The approver's sign-in time when deciding (milliseconds since the epoch), for the evidence pack.
ALTER TABLE approvals ADD COLUMN auth_time INTEGER;

-- What the stack was when the change set was made: its template and parameters (for the diff)
-- and a fingerprint (status and last update) that tells whether it changed since.
ALTER TABLE deployments ADD COLUMN base_template TEXT;
ALTER TABLE deployments ADD COLUMN base_params_json TEXT;
ALTER TABLE deployments ADD COLUMN stack_fingerprint TEXT;
ALTER TABLE deployments ADD COLUMN change_set_ready_at INTEGER;

-- One executing deployment per stack; change sets may be prepared (and discarded) meanwhile.
DROP INDEX deployments_one_active_per_stack;
CREATE UNIQUE INDEX deployments_one_active_per_stack
    ON deployments(account_id, region, stack_name)
    WHERE status IN ('queued', 'running') AND step IN ('change_set_ready', 'execute_requested');
