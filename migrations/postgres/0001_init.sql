-- stackgate schema, PostgreSQL flavour. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    name TEXT,
    groups_json TEXT NOT NULL DEFAULT '[]',
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    UNIQUE (issuer, subject)
);

-- Only a hash of the session token is stored; the token lives in the browser's cookie.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    auth_time BIGINT
);
CREATE INDEX sessions_user ON sessions(user_id);

-- A login in progress: state, nonce and PKCE verifier, encrypted with a key only the browser's
-- pre-auth cookie holds; single use, ten minutes.
CREATE TABLE pending_logins (
    id_hash TEXT PRIMARY KEY,
    sealed TEXT NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    env_class TEXT NOT NULL,
    deploy_role_arn TEXT NOT NULL,
    external_id TEXT NOT NULL UNIQUE,
    regions TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE account_teams (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    team TEXT NOT NULL,
    PRIMARY KEY (account_id, team)
);

CREATE TABLE service_requests (
    id TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    team TEXT NOT NULL,
    requester_id TEXT NOT NULL REFERENCES users(id),
    blueprint_slug TEXT NOT NULL,
    blueprint_version TEXT NOT NULL,
    blueprint_digest TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    region TEXT NOT NULL,
    env_class TEXT NOT NULL,
    env_name TEXT NOT NULL,
    stack_name TEXT NOT NULL,
    params_json TEXT NOT NULL,
    template_body TEXT NOT NULL,
    template_digest TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    policy_json TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX service_requests_team ON service_requests(team, status);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES service_requests(id),
    approver_id TEXT NOT NULL REFERENCES users(id),
    decision TEXT NOT NULL,
    comment TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (request_id, approver_id, content_hash)
);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL REFERENCES service_requests(id),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    region TEXT NOT NULL,
    stack_name TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    step TEXT NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    next_attempt_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    change_set_name TEXT,
    change_set_arn TEXT,
    stack_id TEXT,
    error TEXT,
    outputs_json TEXT NOT NULL DEFAULT '[]',
    changes_json TEXT NOT NULL DEFAULT '[]',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
-- At most one active deployment per stack.
CREATE UNIQUE INDEX deployments_one_active_per_stack
    ON deployments(account_id, region, stack_name) WHERE status IN ('queued', 'running');

CREATE TABLE deployment_events (
    id BIGSERIAL PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    event_key TEXT NOT NULL,
    at BIGINT NOT NULL,
    logical_id TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    UNIQUE (deployment_id, event_key)
);

-- Append-only, hash-chained audit log.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor_id TEXT,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail_json TEXT NOT NULL,
    correlation_id TEXT,
    source_ip TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_object ON audit_log(object_type, object_id);

CREATE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
