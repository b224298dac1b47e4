-- Lists that stay fast as requests accumulate, request numbers that concurrent submits cannot
-- share, and the columns the worker and sessions need to re-check what they trust.

-- Rendered templates, stored once per digest: list queries never read a template, and the
-- request page and the worker fetch it by the digest the approval is bound to.
CREATE TABLE rendered_templates (
    digest TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO rendered_templates (digest, body, created_at)
    SELECT template_digest, min(template_body), min(created_at) FROM service_requests
    GROUP BY template_digest;
ALTER TABLE service_requests DROP COLUMN template_body;

-- The CloudFormation capabilities the approved change set is created with (part of the binding).
ALTER TABLE service_requests ADD COLUMN capabilities_json TEXT NOT NULL DEFAULT '["CAPABILITY_IAM"]';

-- Monotonic counters (request numbers), taken with an UPDATE … RETURNING under a row lock.
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value)
    SELECT 'request_number', coalesce(max(number), 0) FROM service_requests;

-- Every list is a keyset range on one of these (team and status first, then time and id). The
-- (team|status, …) ones also carry what the approvals inbox filters on (requester, content hash),
-- so counting a reviewer's inbox reads the index alone.
DROP INDEX service_requests_team;
CREATE INDEX service_requests_team_status_time
    ON service_requests(team, status, created_at, id) INCLUDE (requester_id, content_hash);
CREATE INDEX service_requests_team_time ON service_requests(team, created_at, id);
CREATE INDEX service_requests_status_time
    ON service_requests(status, created_at, id) INCLUDE (requester_id, content_hash);
CREATE INDEX service_requests_time ON service_requests(created_at, id);
CREATE INDEX deployments_request ON deployments(request_id, created_at);
CREATE INDEX deployments_due ON deployments(status, next_attempt_at);
CREATE INDEX audit_log_action_seq ON audit_log(action, seq);

-- Sessions re-check the user's groups with the IdP; the access token that allows it is stored
-- encrypted under a key derived from the session cookie (the database alone cannot open it).
ALTER TABLE sessions ADD COLUMN groups_checked_at BIGINT;
ALTER TABLE sessions ADD COLUMN access_token_sealed TEXT;

-- The CloudFormation service role of an account (RoleARN of every change set), from the registry.
ALTER TABLE accounts ADD COLUMN cfn_execution_role_arn TEXT;

-- When the audit chain was last verified, and how far.
CREATE TABLE audit_verifications (
    id BIGSERIAL PRIMARY KEY,
    verified_at BIGINT NOT NULL,
    verified_up_to BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    records BIGINT NOT NULL,
    broken_at BIGINT,
    reason TEXT,
    actor_name TEXT NOT NULL
);
