-- Issue 9: admins manage users and approval policies.
--
-- Users are listed newest sign-in first, a keyset page at a time; sessions are listed per user.
CREATE INDEX users_last_login ON users(last_login_at, id);

-- Approval rules as versioned data: each change stores a whole new rule set (JSON: per
-- environment class the distinct approvals and the groups that must be among them, and the
-- extra group per risk flag). Versions are never edited; the newest is current. The settings
-- STACKGATE_APPROVALS_* and STACKGATE_RISK_ROUTES seed version 1 when the table is empty.
CREATE TABLE approval_policies (
    version INTEGER PRIMARY KEY,
    rules_json TEXT NOT NULL,
    created_by TEXT,
    created_by_name TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- The rules a request was submitted under (null: before this migration, read as version 1).
ALTER TABLE service_requests ADD COLUMN approval_policy_version INTEGER;

-- Where a session's sign-in came from, for the admin's view of a user's sessions.
ALTER TABLE sessions ADD COLUMN source_ip TEXT;
