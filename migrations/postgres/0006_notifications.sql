-- Webhook notifications (issue 8). The audit log is the outbox: a notifier reads the records
-- after its cursor, turns those that concern a team into rows here (advancing the cursor in the
-- same transaction), then delivers the due rows. Webhook URLs are secrets: never stored here.

-- The last audit record the notifier has looked at. It starts at the head of the log, so the
-- history before this migration is never announced.
CREATE TABLE notify_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    audit_seq BIGINT NOT NULL
);
INSERT INTO notify_cursor (id, audit_seq) SELECT 1, COALESCE(MAX(seq), 0) FROM audit_log;

-- One message for one team about one audit record: queued until delivered (sent) or given up
-- (failed, with the reason). attempts counts delivery tries; next_attempt_at is when the next
-- may start (a claimed row's lease while a try runs).
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    audit_seq BIGINT NOT NULL,
    team TEXT NOT NULL,
    request_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    UNIQUE (audit_seq, team)
);
CREATE INDEX notifications_due ON notifications(next_attempt_at) WHERE status = 'queued';
CREATE INDEX notifications_failed ON notifications(status) WHERE status = 'failed';
