//! One webhook call, and what to do after it: done, try again later (with exponential backoff
//! and jitter from `backon`, persisted by the caller), or give up.
//!
//! The URL is a secret, so no message made here contains it: reqwest's errors are stripped of
//! their URL before they are described.

use std::time::Duration;

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use reqwest::StatusCode;

use crate::config::WebhookUrl;

/// The longest wait between two tries (before jitter, which adds up to as much again).
pub const MAX_DELAY: Duration = Duration::from_secs(600);

/// Response body kept for the error message, at most.
const BODY_KEPT: usize = 200;

/// How a call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Worth trying again: a timeout, a refused connection, a 5xx, a 429 (whose `Retry-After`,
    /// if any, is `after`).
    Retry {
        why: String,
        after: Option<Duration>,
    },
    /// Trying again would not help: a 4xx other than 408 and 429, or a redirect.
    Permanent(String),
}

/// The HTTP client: a timeout on every call (connection included) and no redirects (a webhook
/// that moved must be reconfigured, not followed to wherever it points).
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("stackgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the notifier's HTTP client")
}

/// The wait before try `attempt + 1`, after `attempt` failed tries: `base`, `2×base`, `4×base`…
/// up to [`MAX_DELAY`], each plus a random jitter of up to as much again.
pub fn backoff(attempt: i64, base: Duration) -> Duration {
    ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempt.saturating_sub(1).clamp(0, 1000) as usize)
        .unwrap_or(MAX_DELAY)
}

/// Posts `payload` (JSON text) to `url`.
pub async fn post(client: &reqwest::Client, url: &WebhookUrl, payload: &str) -> Delivery {
    let sent = client
        .post(url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(payload.to_string())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(e) => {
            return Delivery::Retry {
                why: describe(e),
                after: None,
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Delivery::Sent;
    }
    let after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_DELAY));
    let mut body = Vec::new();
    while body.len() < BODY_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(BODY_KEPT);
    let text: String = String::from_utf8_lossy(&body)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let why = format!("the receiver answered {status}: {}", text.trim());
    judge(status, why, after)
}

/// What a non-success status means.
fn judge(status: StatusCode, why: String, after: Option<Duration>) -> Delivery {
    let transient = status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT;
    if transient {
        Delivery::Retry { why, after }
    } else {
        Delivery::Permanent(why)
    }
}

/// The cause chain of a failed call, without the URL (reqwest's message names it).
fn describe(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let connect = e.is_connect();
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let chain = parts.join(": ");
    if timeout {
        format!("timed out ({chain})")
    } else if connect {
        format!("could not connect ({chain})")
    } else {
        chain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_429_and_408_are_retried_other_client_errors_are_final() {
        for code in [500, 502, 503, 429, 408] {
            let status = StatusCode::from_u16(code).unwrap_or_default();
            assert!(
                matches!(judge(status, "x".into(), None), Delivery::Retry { .. }),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 410, 301, 302] {
            let status = StatusCode::from_u16(code).unwrap_or_default();
            assert!(
                matches!(judge(status, "x".into(), None), Delivery::Permanent(_)),
                "{code}"
            );
        }
    }

    #[test]
    fn backoff_doubles_from_the_base_with_jitter_and_stops_growing_at_the_cap() {
        let base = Duration::from_millis(100);
        for attempt in 1..=6 {
            let nominal = base * 2u32.pow(attempt as u32 - 1);
            let d = backoff(attempt, base);
            assert!(d >= nominal && d <= nominal * 2, "try {attempt}: {d:?}");
        }
        let late = backoff(40, base);
        assert!(late >= MAX_DELAY && late <= MAX_DELAY * 2, "{late:?}");
        // Jitter: many draws of one step are not all the same.
        let draws: std::collections::BTreeSet<Duration> =
            (0..20).map(|_| backoff(3, base)).collect();
        assert!(draws.len() > 1, "{draws:?}");
    }
}
