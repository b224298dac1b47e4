//! Webhook notifications: a team hears, in its chat channel, that a request of theirs was
//! submitted, needs review, was approved, rejected, deployed, or failed.
//!
//! The audit log is the outbox. Every state change already writes its audit record in the same
//! transaction, so the [`Notifier`] reads the records after its cursor, turns those that concern
//! a team with a webhook into `notifications` rows (advancing the cursor in the same
//! transaction), and delivers the due rows with retries and backoff. Nothing here runs inside a
//! request's transaction: a receiver that is down or hangs never slows or fails a request, and
//! the worker never waits for it.
//!
//! `message` builds the Slack-compatible payload, `deliver` makes the call and chooses the
//! retry, `store` is the SQL.

pub mod deliver;
pub mod message;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use crate::audit::Record;
use crate::config::Config;
use crate::db::Db;

use deliver::Delivery;

/// What a team is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Submitted,
    NeedsReview,
    Approved,
    Rejected,
    Deployed,
    Failed,
}

impl Event {
    /// The audit action a notification comes from, if any does.
    pub fn of_action(action: &str) -> Option<Event> {
        Some(match action {
            "request.submitted" => Event::Submitted,
            "request.review_ready" => Event::NeedsReview,
            "request.approved" | "request.auto_approved" | "request.emergency_released" => {
                Event::Approved
            }
            "request.rejected" => Event::Rejected,
            "deploy.succeeded" => Event::Deployed,
            "deploy.failed" | "deploy.needs_attention" | "change_set.failed" => Event::Failed,
            _ => return None,
        })
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Submitted => "submitted",
            Event::NeedsReview => "needs_review",
            Event::Approved => "approved",
            Event::Rejected => "rejected",
            Event::Deployed => "deployed",
            Event::Failed => "failed",
        }
    }
}

/// Audit records older than this when the notifier first sees them are not announced: news that
/// late is noise (it happens only when notifications were off, e.g. no team had a webhook).
const STALE_AFTER_MS: i64 = 3_600_000;

/// Audit records read per pass.
const BATCH: i64 = 500;

/// Deliveries claimed (and sent concurrently) per pass.
const CLAIM: i64 = 16;

/// The notifier: one per process, beside the worker; several replicas may run one each.
pub struct Notifier {
    db: Db,
    config: Arc<Config>,
    client: reqwest::Client,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Notifications queued from new audit records.
    pub queued: usize,
    /// Deliveries tried.
    pub tried: usize,
}

impl Notifier {
    pub fn new(db: Db, config: Arc<Config>) -> anyhow::Result<Notifier> {
        let client = deliver::client(Duration::from_millis(config.notify_timeout_ms))?;
        Ok(Notifier { db, config, client })
    }

    fn poll(&self) -> Duration {
        Duration::from_millis(self.config.notify_poll_ms)
    }

    /// Runs passes until a stop is requested. A delivery in flight at the stop is abandoned; its
    /// row's lease runs out and it is tried again (by this replica after a restart, or another).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tracing::info!("The notifier started.");
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            let pass = tokio::select! {
                pass = self.run_once() => pass,
                _ = stop.changed() => break,
            };
            let busy = match pass {
                Ok(p) => p.queued > 0 || p.tried as i64 >= CLAIM,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "The notifier could not finish a pass; it will try again."
                    );
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = tokio::time::sleep(self.poll()) => {}
                    _ = stop.changed() => break,
                }
            }
        }
        tracing::info!("The notifier stopped.");
    }

    /// Queues notifications for new audit records, then tries the due deliveries once.
    pub async fn run_once(&self) -> anyhow::Result<Pass> {
        let queued = self.collect().await?;
        let tried = self.deliver_due().await?;
        Ok(Pass { queued, tried })
    }

    /// Turns the audit records after the cursor into notifications and advances the cursor, in
    /// one transaction. A replica that lost the race to advance it leaves the work to the winner.
    async fn collect(&self) -> anyhow::Result<usize> {
        let Some(cursor) = store::behind(&self.db).await? else {
            return Ok(0);
        };
        let records = crate::audit::store::after(&self.db, cursor, BATCH).await?;
        let Some(last) = records.last().map(|r| r.seq) else {
            return Ok(0);
        };
        let now = crate::db::now_ms();
        let mut fresh = Vec::new();
        for record in records.iter().filter(|r| now - r.at < STALE_AFTER_MS) {
            if let Some(n) = self.notification(record).await? {
                fresh.push(n);
            }
        }
        let queued = store::enqueue(&self.db, cursor, last, &fresh).await?;
        Ok(queued.unwrap_or(0))
    }

    /// The notification an audit record makes, when it maps to an event and the request's team
    /// has a webhook.
    async fn notification(&self, record: &Record) -> anyhow::Result<Option<store::Fresh>> {
        let Some(event) = Event::of_action(&record.action) else {
            return Ok(None);
        };
        if record.object_type != "request" {
            return Ok(None);
        }
        let Some(subject) = store::subject(&self.db, &record.object_id).await? else {
            return Ok(None);
        };
        if self.config.webhook(&subject.team).is_none() {
            return Ok(None);
        }
        let reason = match record.action.as_str() {
            // The reason sits on the decision recorded just before, in the same transaction.
            "request.rejected" => store::rejection_comment(&self.db, record.seq - 1).await?,
            _ => None,
        };
        let link = format!(
            "{}/requests/{}",
            self.config.public_url.as_str().trim_end_matches('/'),
            subject.id
        );
        let payload = message::payload(event, record, &subject, &link, reason.as_deref());
        Ok(Some(store::Fresh {
            audit_seq: record.seq,
            team: subject.team.clone(),
            request_id: subject.id.clone(),
            event,
            payload: payload.to_string(),
        }))
    }

    /// Claims the due deliveries and tries each once, concurrently; records each outcome.
    async fn deliver_due(&self) -> anyhow::Result<usize> {
        let lease_ms = 2 * self.config.notify_timeout_ms as i64 + 5_000;
        let claimed = store::claim(&self.db, CLAIM, lease_ms).await?;
        let tried = claimed.len();
        let sends = claimed.into_iter().map(|row| self.deliver(row));
        for result in futures_util::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "The outcome of a notification could not be recorded; it will be tried again."
                );
            }
        }
        Ok(tried)
    }

    async fn deliver(&self, row: store::Claimed) -> anyhow::Result<()> {
        let Some(url) = self.config.webhook(&row.team) else {
            // The URL is resolved at send time: a team whose webhook was removed gets nothing.
            store::give_up(&self.db, &row, "the team has no webhook URL any more").await?;
            tracing::warn!(notify.team = %row.team, "A notification was dropped: its team has no webhook any more.");
            return Ok(());
        };
        let host = url.host();
        match deliver::post(&self.client, url, &row.payload).await {
            Delivery::Sent => {
                store::sent(&self.db, &row).await?;
                tracing::info!(notify.team = %row.team, notify.host = %host, notify.event = %row.event, notify.attempts = row.attempts, "A notification was delivered.");
            }
            Delivery::Retry { why, after } if row.attempts < self.config.notify_max_attempts => {
                let base = self.poll() * 10;
                let delay = deliver::backoff(row.attempts, base).max(after.unwrap_or_default());
                store::retry(&self.db, &row, delay, &why).await?;
                tracing::warn!(notify.team = %row.team, notify.host = %host, notify.attempts = row.attempts, error = %why, "A notification could not be delivered; it will be retried.");
            }
            Delivery::Retry { why, .. } | Delivery::Permanent(why) => {
                let why = format!("gave up after {} attempt(s): {why}", row.attempts);
                store::give_up(&self.db, &row, &why).await?;
                tracing::error!(notify.team = %row.team, notify.host = %host, error = %why, "A notification could not be delivered and was given up.");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_audited_action_maps_to_its_event_and_others_to_none() {
        for (action, event) in [
            ("request.submitted", Some(Event::Submitted)),
            ("request.review_ready", Some(Event::NeedsReview)),
            ("request.approved", Some(Event::Approved)),
            ("request.auto_approved", Some(Event::Approved)),
            ("request.emergency_released", Some(Event::Approved)),
            ("request.rejected", Some(Event::Rejected)),
            ("deploy.succeeded", Some(Event::Deployed)),
            ("deploy.failed", Some(Event::Failed)),
            ("deploy.needs_attention", Some(Event::Failed)),
            ("change_set.failed", Some(Event::Failed)),
            ("approval.approved", None),
            ("approval.rejected", None),
            ("request.cancelled", None),
            ("deploy.started", None),
            ("auth.login", None),
            ("", None),
        ] {
            assert_eq!(Event::of_action(action), event, "{action}");
        }
    }
}
