//! Approval SQL.

use sqlx::Row;

use super::{Approval, Decision};
use crate::db::StoreError;
use crate::db::{Db, Tx, now_ms};
use crate::requests::ServiceRequest;

/// A decision to store: who, on which change set, signed in when.
pub struct NewDecision<'a> {
    pub approver_id: &'a str,
    pub decision: Decision,
    pub comment: &'a str,
    pub change_set_arn: &'a str,
    pub auth_time: Option<i64>,
}

/// Stores a decision bound to the request's content hash and the change set's ARN.
pub async fn insert(
    tx: &mut Tx,
    request: &ServiceRequest,
    d: NewDecision<'_>,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "insert into approvals (id, request_id, approver_id, decision, comment, content_hash, \
         change_set_arn, auth_time, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(request.id.clone())
    .bind(d.approver_id.to_string())
    .bind(d.decision.as_str())
    .bind(d.comment.to_string())
    .bind(super::approval_hash(&request.content_hash, d.change_set_arn))
    .bind(d.change_set_arn.to_string())
    .bind(d.auth_time)
    .bind(now_ms())
    .execute(&mut **tx)
    .await;
    match done {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::Conflict(
            "You have already decided on this version of the request.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Someone whose approval counts towards a request, as the user is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub user_id: String,
    pub name: String,
    /// The IdP groups last confirmed for the user (roles derive from them).
    pub groups: Vec<String>,
    pub disabled: bool,
    /// When they approved (ms since the epoch).
    pub approved_at: i64,
}

/// The users who approved this approval hash (see [`super::approval_hash`]) of the request, as
/// they are now, in the caller's transaction or on the pool.
pub async fn approvers<'e, E>(
    ex: E,
    request_id: &str,
    approval_hash: &str,
) -> Result<Vec<Approver>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "select u.id, coalesce(u.name, u.subject), u.groups_json, u.disabled, a.created_at \
         from approvals a join users u on u.id = a.approver_id \
         where a.request_id = $1 and a.content_hash = $2 and a.decision = 'approve' \
         order by a.created_at limit 100",
    )
    .bind(request_id.to_string())
    .bind(approval_hash.to_string())
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let groups: String = r.try_get(2)?;
            Ok(Approver {
                user_id: r.try_get(0)?,
                name: r.try_get(1)?,
                groups: serde_json::from_str(&groups).unwrap_or_default(),
                disabled: r.try_get::<i64, _>(3)? != 0,
                approved_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Every decision on a request, oldest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<Approval>, StoreError> {
    let rows = sqlx::query(
        "select a.approver_id, coalesce(u.name, u.subject), a.decision, a.comment, a.content_hash, \
         a.created_at, a.change_set_arn, a.auth_time from approvals a \
         join users u on u.id = a.approver_id where a.request_id = $1 order by a.created_at \
         limit 500",
    )
    .bind(request_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Approval {
                approver_id: r.try_get(0)?,
                approver_name: r.try_get(1)?,
                decision: r.try_get(2)?,
                comment: r.try_get(3)?,
                content_hash: r.try_get(4)?,
                created_at: r.try_get(5)?,
                change_set_arn: r.try_get(6)?,
                auth_time: r.try_get(7)?,
            })
        })
        .collect()
}

/// The IdP groups last confirmed for a user, in the caller's transaction or on the pool.
pub async fn groups_of<'e, E>(ex: E, user_id: &str) -> Result<Vec<String>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query("select groups_json from users where id = $1")
        .bind(user_id.to_string())
        .fetch_optional(ex)
        .await?;
    Ok(match row {
        Some(r) => serde_json::from_str(&r.try_get::<String, _>(0)?)
            .map_err(|e| StoreError::unreadable("user's groups", e))?,
        None => vec![],
    })
}

/// A user as an approver (groups and whether disabled, as they are now), e.g. the admin who
/// released a change in an emergency.
pub async fn user_as_approver(db: &Db, user_id: &str) -> Result<Option<Approver>, StoreError> {
    let row = sqlx::query(
        "select id, coalesce(name, subject), groups_json, disabled from users where id = $1",
    )
    .bind(user_id.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| {
        let groups: String = r.try_get(2)?;
        Ok(Approver {
            user_id: r.try_get(0)?,
            name: r.try_get(1)?,
            groups: serde_json::from_str(&groups)
                .map_err(|e| StoreError::unreadable("user's groups", e))?,
            disabled: r.try_get::<i64, _>(3)? != 0,
            approved_at: 0,
        })
    })
    .transpose()
}
