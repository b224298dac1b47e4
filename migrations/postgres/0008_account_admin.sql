-- Account administration (issue 9): what an account is for, whether requests may go to it, the
-- last access check, and ExternalId rotation.
-- purpose: management, security, log-archive, shared-services, dev, test or prod (null for rows
--   from before this migration: the portal reads the environment class then).
-- status: active or disabled; status_reason says why it is disabled.
-- managed_by: config (named by the configuration file, which seeds it at every start) or admin
--   (added in the portal; the file leaves it alone).
-- last_check_ok: 1 or 0, null when never checked (or not since the ExternalId was rotated).
-- previous_external_id: the ExternalId before the last rotation, shown until a check succeeds.
ALTER TABLE accounts ADD COLUMN purpose TEXT;
ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
ALTER TABLE accounts ADD COLUMN status_reason TEXT;
ALTER TABLE accounts ADD COLUMN managed_by TEXT NOT NULL DEFAULT 'config';
ALTER TABLE accounts ADD COLUMN last_check_at BIGINT;
ALTER TABLE accounts ADD COLUMN last_check_ok BIGINT;
ALTER TABLE accounts ADD COLUMN last_check_reason TEXT;
ALTER TABLE accounts ADD COLUMN previous_external_id TEXT;
-- Existing rows: a workload account's purpose is its class; a core account named after a purpose
-- takes it (the others read as shared-services until the config file or an admin names one).
UPDATE accounts SET purpose = env_class WHERE env_class IN ('dev', 'test', 'prod');
UPDATE accounts SET purpose = name
    WHERE env_class = 'core' AND name IN ('management', 'security', 'log-archive', 'shared-services');
