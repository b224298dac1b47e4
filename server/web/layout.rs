//! What every page's frame needs: who is signed in, the anti-forgery token, navigation counts,
//! and times shown relative with the absolute UTC time beside.

use chrono::{DateTime, Datelike, Timelike, Utc};

use super::{CurrentUser, Gate};
use crate::error::AppError;

/// The frame of a signed-in page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub user_name: String,
    pub csrf_token: String,
    pub is_approver: bool,
    pub is_auditor: bool,
    pub is_admin: bool,
    pub can_request: bool,
    /// Requests waiting for this user's review, as the badge shows it ("99+" beyond).
    pub inbox_badge: String,
    /// Which navigation entry is current.
    pub nav: &'static str,
}

/// The badge counts no further than this.
pub const BADGE_CAP: i64 = 100;

/// A count as a badge shows it.
pub fn badge(count: i64) -> String {
    if count >= BADGE_CAP {
        format!("{}+", BADGE_CAP - 1)
    } else {
        count.to_string()
    }
}

impl Layout {
    /// The frame, counting the user's inbox for its badge (one query, for approvers).
    pub async fn new(
        gate: &dyn Gate,
        user: &CurrentUser,
        nav: &'static str,
    ) -> Result<Layout, AppError> {
        let inbox = if user.roles.is_approver() {
            gate.inbox_count(user, BADGE_CAP).await?
        } else {
            0
        };
        Ok(Layout::with_inbox(user, nav, inbox))
    }

    /// The frame, with an inbox count the page has already read (in its own statement).
    pub fn with_inbox(user: &CurrentUser, nav: &'static str, inbox: i64) -> Layout {
        Layout {
            user_name: user.name.clone(),
            csrf_token: user.csrf_token.clone(),
            is_approver: user.roles.is_approver(),
            is_auditor: user.roles.auditor || user.roles.admin,
            is_admin: user.roles.admin,
            can_request: !user.roles.requester_teams.is_empty(),
            inbox_badge: badge(inbox),
            nav,
        }
    }
}

/// A point in time for display: "12 min ago" with the UTC time for the tooltip.
#[derive(Debug, Clone)]
pub struct When {
    pub relative: String,
    pub utc: String,
}

impl When {
    pub fn at(ms: i64) -> When {
        let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms).unwrap_or_default();
        // Written field by field: chrono's `format` parses its pattern on every call, and a list
        // page shows two times per row.
        When {
            relative: relative(Utc::now().timestamp_millis() - ms),
            utc: format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
        }
    }
}

fn relative(ago_ms: i64) -> String {
    let s = ago_ms / 1000;
    match s {
        i64::MIN..=9 => "just now".into(),
        10..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::{badge, relative};

    #[test]
    fn badges_stop_counting_at_the_cap() {
        assert_eq!(badge(0), "0");
        assert_eq!(badge(99), "99");
        assert_eq!(badge(100), "99+");
    }

    #[test]
    fn absolute_times_are_utc_to_the_second() {
        assert_eq!(
            super::When::at(1_764_554_400_123).utc,
            "2025-12-01 02:00:00 UTC"
        );
    }

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(relative(3_000), "just now");
        assert_eq!(relative(42_000), "42 s ago");
        assert_eq!(relative(12 * 60_000), "12 min ago");
        assert_eq!(relative(5 * 3_600_000), "5 h ago");
        assert_eq!(relative(3 * 86_400_000), "3 days ago");
    }
}
