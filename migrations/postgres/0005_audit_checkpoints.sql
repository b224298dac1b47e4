-- Signed checkpoints of the audit chain (bar D4): the chain's head (last seq and its hash) at a
-- moment, signed with an Ed25519 key kept outside the database. One per seq; append-only.
CREATE TABLE audit_checkpoints (
    seq BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    signed_at BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();

-- How far the audit export to the Object Lock bucket has been acknowledged (bar D5): one row
-- per stream ('records', 'checkpoints'), the last seq written.
CREATE TABLE audit_exports (
    stream TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
