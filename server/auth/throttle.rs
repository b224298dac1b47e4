//! Sign-in under a flood: a per-client rate limit on starting a sign-in and on callbacks
//! (`STACKGATE_LOGIN_RATE_PER_MINUTE`, a maintained limiter), and refused sign-ins audited without
//! letting a flood grow the audit chain without bound.
//!
//! The first refusal of each (client, reason) in a minute is appended at once; the rest of that
//! minute are counted and appended as one summary record when the minute is over. At most
//! [`MAX_KEYS_PER_MINUTE`] (client, reason) pairs are tracked a minute; beyond that one overall
//! count is kept. So a minute adds at most `2 × MAX_KEYS_PER_MINUTE + 1` records, whatever comes.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::audit::{self, Actor, Entry};
use crate::db::Db;

/// (client, reason) pairs tracked in one minute.
pub const MAX_KEYS_PER_MINUTE: usize = 1_000;

/// Whether a refusal must be appended now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The first of its kind this minute: append it.
    First,
    /// Counted for the minute's summary.
    Counted,
}

/// Refusals by (minute, client, reason): how many came after the first.
#[derive(Debug, Default)]
struct Counts {
    extra: BTreeMap<(i64, String, String), u64>,
    /// Pairs tracked per minute, and refusals beyond them.
    keys: BTreeMap<i64, usize>,
    overflow: BTreeMap<i64, u64>,
}

/// The sign-in limiter and the refusal counts.
pub struct LoginGuard {
    limiter: DefaultKeyedRateLimiter<String>,
    counts: Mutex<Counts>,
}

impl LoginGuard {
    pub fn new(per_minute: u32) -> LoginGuard {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        LoginGuard {
            limiter: RateLimiter::keyed(Quota::per_minute(rate)),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Whether `client` may make one more sign-in call now.
    pub fn allow(&self, client: &str) -> bool {
        let allowed = self.limiter.check_key(&client.to_string()).is_ok();
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        allowed
    }

    /// Notes a refusal at `now_ms`; see [`Note`].
    pub fn note(&self, client: &str, reason: &str, now_ms: i64) -> Note {
        let minute = now_ms.div_euclid(60_000);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (minute, client.to_string(), reason.to_string());
        if let Some(n) = c.extra.get_mut(&key) {
            *n += 1;
            return Note::Counted;
        }
        let tracked = c.keys.entry(minute).or_default();
        if *tracked >= MAX_KEYS_PER_MINUTE {
            *c.overflow.entry(minute).or_default() += 1;
            return Note::Counted;
        }
        *tracked += 1;
        c.extra.insert(key, 0);
        Note::First
    }

    /// The summary records of every minute before `now_ms`'s, taken out of the counts.
    pub fn summaries(&self, now_ms: i64) -> Vec<Entry> {
        let current = now_ms.div_euclid(60_000);
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let kept = c.extra.split_off(&(current, String::new(), String::new()));
        let done = std::mem::replace(&mut c.extra, kept);
        let kept_keys = c.keys.split_off(&current);
        c.keys = kept_keys;
        let kept_overflow = c.overflow.split_off(&current);
        let overflow = std::mem::replace(&mut c.overflow, kept_overflow);
        drop(c);
        let summary = |reason: &str, count: u64, minute: i64, client: Option<String>| {
            Entry::new(
                &Actor::system("anonymous"),
                "auth.login_failed",
                "session",
                "-",
            )
            .outcome("denied")
            .detail(serde_json::json!({
                "reason": reason, "count": count, "minute_started_at": minute * 60_000,
                "aggregated": true,
            }))
            .source_ip(client)
        };
        done.into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((minute, client, reason), n)| summary(&reason, n, minute, Some(client)))
            .chain(
                overflow
                    .into_iter()
                    .map(|(minute, n)| summary("many_clients", n, minute, None)),
            )
            .collect()
    }

    /// Appends the summaries of the minutes before `now_ms`'s (at shutdown, pass a time a
    /// minute ahead to flush everything).
    pub async fn flush(&self, db: &Db, now_ms: i64) -> Result<usize, sqlx::Error> {
        let entries = self.summaries(now_ms);
        let n = entries.len();
        for entry in entries {
            audit::store::append_alone(db, entry).await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_adds_one_record_per_client_reason_and_minute_plus_one_summary() {
        let g = LoginGuard::new(10);
        let t0 = 29_400_000 * 60_000_i64; // the start of a minute
        assert_eq!(g.note("10.0.0.1", "no_preauth_cookie", t0), Note::First);
        for i in 1..500 {
            assert_eq!(
                g.note("10.0.0.1", "no_preauth_cookie", t0 + i),
                Note::Counted
            );
        }
        assert_eq!(g.note("10.0.0.1", "state_mismatch", t0 + 10), Note::First);
        assert_eq!(
            g.note("10.0.0.2", "no_preauth_cookie", t0 + 10),
            Note::First
        );
        // Nothing to summarise while the minute runs.
        assert!(g.summaries(t0 + 59_000).is_empty());
        // A new minute: its first refusal is appended at once again.
        assert_eq!(
            g.note("10.0.0.1", "no_preauth_cookie", t0 + 60_000),
            Note::First
        );
        let s = g.summaries(t0 + 60_001);
        assert_eq!(s.len(), 1, "only the pair with refusals after its first");
        assert_eq!(s[0].detail["count"], 499);
        assert_eq!(s[0].source_ip.as_deref(), Some("10.0.0.1"));
        assert!(g.summaries(t0 + 60_002).is_empty(), "taken once");
    }

    #[test]
    fn beyond_the_tracked_pairs_one_overall_count_is_kept() {
        let g = LoginGuard::new(10);
        let t0 = 60_000 * 1000;
        for i in 0..MAX_KEYS_PER_MINUTE + 300 {
            g.note(&format!("client-{i}"), "idp_error", t0);
        }
        let s = g.summaries(t0 + 60_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].detail["reason"], "many_clients");
        assert_eq!(s[0].detail["count"], 300);
    }

    #[test]
    fn the_limiter_admits_the_quota_per_client() {
        let g = LoginGuard::new(5);
        let admitted = (0..20).filter(|_| g.allow("10.0.0.9")).count();
        assert_eq!(admitted, 5);
        assert!(g.allow("10.0.0.10"), "another client has its own quota");
    }
}
