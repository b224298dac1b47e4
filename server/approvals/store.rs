//! Approval SQL.

use sqlx::Row;

use super::{Approval, Decision};
use crate::db::StoreError;
use crate::db::{Db, Tx, now_ms};
use crate::requests::ServiceRequest;

/// Stores a decision bound to the request's current content hash.
pub async fn insert(
    tx: &mut Tx,
    request: &ServiceRequest,
    approver_id: &str,
    decision: Decision,
    comment: &str,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "insert into approvals (id, request_id, approver_id, decision, comment, content_hash, created_at) \
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(request.id.clone())
    .bind(approver_id.to_string())
    .bind(decision.as_str())
    .bind(comment.to_string())
    .bind(request.content_hash.clone())
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

/// How many distinct approvers approved this content hash.
pub async fn distinct_approvers(
    tx: &mut Tx,
    request_id: &str,
    content_hash: &str,
) -> Result<usize, StoreError> {
    let n: i64 = sqlx::query(
        "select count(distinct approver_id) from approvals \
         where request_id = $1 and content_hash = $2 and decision = 'approve'",
    )
    .bind(request_id.to_string())
    .bind(content_hash.to_string())
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(n.max(0) as usize)
}

/// Someone whose approval counts towards a request, as the user is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub user_id: String,
    pub name: String,
    /// The IdP groups last confirmed for the user (roles derive from them).
    pub groups: Vec<String>,
    pub disabled: bool,
}

/// The distinct users who approved this content hash of the request, as they are now.
pub async fn approvers(
    db: &Db,
    request_id: &str,
    content_hash: &str,
) -> Result<Vec<Approver>, StoreError> {
    let rows = sqlx::query(
        "select distinct u.id, coalesce(u.name, u.subject), u.groups_json, u.disabled \
         from approvals a join users u on u.id = a.approver_id \
         where a.request_id = $1 and a.content_hash = $2 and a.decision = 'approve' order by u.id",
    )
    .bind(request_id.to_string())
    .bind(content_hash.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let groups: String = r.try_get(2)?;
            Ok(Approver {
                user_id: r.try_get(0)?,
                name: r.try_get(1)?,
                groups: serde_json::from_str(&groups).unwrap_or_default(),
                disabled: r.try_get::<i64, _>(3)? != 0,
            })
        })
        .collect()
}

/// Every decision on a request, oldest first.
pub async fn for_request(db: &Db, request_id: &str) -> Result<Vec<Approval>, StoreError> {
    let rows = sqlx::query(
        "select a.approver_id, coalesce(u.name, u.subject), a.decision, a.comment, a.content_hash, a.created_at \
         from approvals a join users u on u.id = a.approver_id where a.request_id = $1 order by a.created_at",
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
            })
        })
        .collect()
}
