-- Environments and their workloads, account settings, and the estate's address plan.

-- Admin-set values per account that blueprints read (docs/blueprints.md), as a JSON object.
ALTER TABLE accounts ADD COLUMN settings_json TEXT NOT NULL DEFAULT '{}';

-- A workload request names the environment (a deployed network request) it goes into.
ALTER TABLE service_requests ADD COLUMN environment_id TEXT REFERENCES service_requests(id);
ALTER TABLE service_requests ADD COLUMN kind TEXT NOT NULL DEFAULT 'environment';
CREATE INDEX service_requests_environment ON service_requests(environment_id, created_at);
CREATE INDEX service_requests_kind_team ON service_requests(kind, team, status);

-- Every VPC block of the estate, requested or deployed: a new one may overlap none of them.
-- first_ip and last_ip are the block's bounds as integers, so an overlap test is a range query.
CREATE TABLE address_blocks (
    request_id TEXT PRIMARY KEY REFERENCES service_requests(id),
    cidr TEXT NOT NULL,
    first_ip BIGINT NOT NULL,
    last_ip BIGINT NOT NULL,
    released_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX address_blocks_range ON address_blocks(first_ip, last_ip) WHERE released_at IS NULL;

-- The requests of one stack (an environment and its updates).
CREATE INDEX service_requests_stack ON service_requests(account_id, region, stack_name, created_at);
