-- Signed checkpoints of the audit chain (bar D4): the chain's head (last seq and its hash) at a
-- moment, signed with an Ed25519 key kept outside the database. One per seq; append-only.
CREATE TABLE audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    head_hash TEXT NOT NULL,
    signed_at INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;

-- How far the audit export to the Object Lock bucket has been acknowledged (bar D5): one row
-- per stream ('records', 'checkpoints'), the last seq written.
CREATE TABLE audit_exports (
    stream TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
