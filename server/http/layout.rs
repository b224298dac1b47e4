//! What every page's frame needs: who is signed in, the anti-forgery token, navigation counts,
//! and times shown relative with the absolute UTC time beside.

use chrono::{DateTime, Utc};

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::requests::{self, RequestStatus};
use crate::state::AppState;

/// The frame of a signed-in page.
#[derive(Debug, Clone)]
pub struct Layout {
    pub user_name: String,
    pub csrf_token: String,
    pub is_approver: bool,
    pub is_auditor: bool,
    pub can_request: bool,
    /// Requests waiting for this user's review.
    pub inbox_count: usize,
    /// Which navigation entry is current.
    pub nav: &'static str,
}

impl Layout {
    pub async fn new(
        state: &AppState,
        user: &CurrentUser,
        nav: &'static str,
    ) -> Result<Layout, AppError> {
        let inbox_count = if user.roles.is_approver() {
            inbox(state, user).await?.len()
        } else {
            0
        };
        Ok(Layout {
            user_name: user.name.clone(),
            csrf_token: user.csrf_token.clone(),
            is_approver: user.roles.is_approver(),
            is_auditor: user.roles.auditor || user.roles.admin,
            can_request: !user.roles.requester_teams.is_empty(),
            inbox_count,
            nav,
        })
    }
}

/// Requests waiting for `user`'s decision: pending, of a team they approve for, not their own,
/// and not already decided by them on the current content. Oldest first.
pub async fn inbox(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Vec<requests::ServiceRequest>, AppError> {
    let teams = if user.roles.global_approver {
        None
    } else {
        Some(user.roles.approver_teams.clone())
    };
    let mut pending = requests::store::list(
        &state.db,
        teams.as_deref(),
        &[RequestStatus::PendingApproval],
        500,
    )
    .await?;
    pending.retain(|r| r.requester_id != user.id);
    let mut out = Vec::new();
    for r in pending {
        let decided = crate::approvals::store::for_request(&state.db, &r.id)
            .await?
            .iter()
            .any(|a| a.approver_id == user.id && a.content_hash == r.content_hash);
        if !decided {
            out.push(r);
        }
    }
    out.reverse();
    Ok(out)
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
        When {
            relative: relative(Utc::now().timestamp_millis() - ms),
            utc: t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
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
    use super::relative;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(relative(3_000), "just now");
        assert_eq!(relative(42_000), "42 s ago");
        assert_eq!(relative(12 * 60_000), "12 min ago");
        assert_eq!(relative(5 * 3_600_000), "5 h ago");
        assert_eq!(relative(3 * 86_400_000), "3 days ago");
    }
}
