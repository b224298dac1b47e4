//! Request SQL. Status changes are compare-and-set on `version`, so two concurrent decisions on
//! one request cannot both win.

use std::collections::BTreeMap;

use sqlx::Row;

use super::input::Prepared;
use super::{RequestStatus, ServiceRequest};
use crate::accounts::EnvClass;
use crate::db::{Db, Tx, now_ms};
use crate::error::AppError;

const SELECT: &str = "select r.id, r.number, r.title, r.team, r.requester_id, \
    coalesce(u.name, u.subject), r.blueprint_slug, r.blueprint_version, r.blueprint_digest, \
    r.account_id, a.name, r.region, r.env_class, r.env_name, r.stack_name, r.params_json, \
    r.template_body, r.template_digest, r.content_hash, r.policy_json, r.status, r.status_reason, \
    r.version, r.created_at, r.updated_at \
    from service_requests r join users u on u.id = r.requester_id \
    join accounts a on a.id = r.account_id";

fn from_row(row: &sqlx::any::AnyRow) -> Result<ServiceRequest, AppError> {
    let params: String = row.try_get(15)?;
    let policy: String = row.try_get(19)?;
    let status: String = row.try_get(20)?;
    let env_class: String = row.try_get(12)?;
    Ok(ServiceRequest {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        title: row.try_get(2)?,
        team: row.try_get(3)?,
        requester_id: row.try_get(4)?,
        requester_name: row.try_get(5)?,
        blueprint_slug: row.try_get(6)?,
        blueprint_version: row.try_get(7)?,
        blueprint_digest: row.try_get(8)?,
        account_id: row.try_get(9)?,
        account_name: row.try_get(10)?,
        region: row.try_get(11)?,
        env_class: env_class
            .parse::<EnvClass>()
            .map_err(|e| anyhow::anyhow!("stored request: {e}"))?,
        env_name: row.try_get(13)?,
        stack_name: row.try_get(14)?,
        params: serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&params)
            .map_err(|e| anyhow::anyhow!("stored request parameters: {e}"))?,
        template_body: row.try_get(16)?,
        template_digest: row.try_get(17)?,
        content_hash: row.try_get(18)?,
        policy: serde_json::from_str(&policy).unwrap_or_default(),
        status: RequestStatus::parse(&status)
            .ok_or_else(|| anyhow::anyhow!("stored request has unknown status {status}"))?,
        status_reason: row.try_get(21)?,
        version: row.try_get(22)?,
        created_at: row.try_get(23)?,
        updated_at: row.try_get(24)?,
    })
}

/// Inserts a new request with the given status; returns its id and number.
pub async fn insert(
    tx: &mut Tx,
    p: &Prepared,
    requester_id: &str,
    status: RequestStatus,
    policy_json: &serde_json::Value,
) -> Result<(String, i64), AppError> {
    let id = uuid::Uuid::new_v4().to_string();
    let number: i64 = sqlx::query("select coalesce(max(number), 0) + 1 from service_requests")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let now = now_ms();
    let title = format!(
        "{} '{}' in {} ({})",
        p.blueprint.name, p.name, p.account.name, p.region
    );
    sqlx::query(
        "insert into service_requests (id, number, title, team, requester_id, blueprint_slug, \
         blueprint_version, blueprint_digest, account_id, region, env_class, env_name, stack_name, \
         params_json, template_body, template_digest, content_hash, policy_json, status, version, \
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, 1, $20, $20)",
    )
    .bind(id.clone())
    .bind(number)
    .bind(title)
    .bind(p.team.clone())
    .bind(requester_id.to_string())
    .bind(p.blueprint.slug.clone())
    .bind(p.blueprint.version.clone())
    .bind(p.blueprint.digest.clone())
    .bind(p.account.id.to_string())
    .bind(p.region.clone())
    .bind(p.account.env_class.as_str())
    .bind(p.name.clone())
    .bind(p.stack_name.clone())
    .bind(serde_json::to_string(&p.rendered.params).map_err(anyhow::Error::from)?)
    .bind(p.rendered.body.clone())
    .bind(p.rendered.digest.clone())
    .bind(p.content_hash.clone())
    .bind(policy_json.to_string())
    .bind(status.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok((id, number))
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ServiceRequest>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where r.id = $1")))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Reads a request inside a transaction (to decide on it).
pub async fn get_in(tx: &mut Tx, id: &str) -> Result<Option<ServiceRequest>, AppError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where r.id = $1")))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Requests of the given teams (or of every team) in the given statuses (or any), newest first.
pub async fn list(
    db: &Db,
    teams: Option<&[String]>,
    statuses: &[RequestStatus],
    limit: i64,
) -> Result<Vec<ServiceRequest>, AppError> {
    if teams.is_some_and(|t| t.is_empty()) {
        return Ok(Vec::new());
    }
    let mut clauses = Vec::new();
    let mut n = 0;
    let mut placeholders = |count: usize| {
        let v: Vec<String> = (0..count).map(|i| format!("${}", n + i + 1)).collect();
        n += count;
        v.join(", ")
    };
    if let Some(t) = teams {
        clauses.push(format!("r.team in ({})", placeholders(t.len())));
    }
    if !statuses.is_empty() {
        clauses.push(format!("r.status in ({})", placeholders(statuses.len())));
    }
    let limit_placeholder = placeholders(1);
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("where {}", clauses.join(" and "))
    };
    let sql = format!("{SELECT} {filter} order by r.created_at desc limit {limit_placeholder}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for t in teams.unwrap_or_default() {
        query = query.bind(t.clone());
    }
    for s in statuses {
        query = query.bind(s.as_str());
    }
    let rows = query.bind(limit.max(1)).fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// Moves a request to `to` if it is still at `version`; `Conflict` when someone else moved it.
pub async fn set_status(
    tx: &mut Tx,
    id: &str,
    version: i64,
    to: RequestStatus,
    reason: Option<&str>,
) -> Result<(), AppError> {
    let done = sqlx::query(
        "update service_requests set status = $1, status_reason = $2, version = version + 1, \
         updated_at = $3 where id = $4 and version = $5",
    )
    .bind(to.as_str())
    .bind(reason.map(str::to_string))
    .bind(now_ms())
    .bind(id.to_string())
    .bind(version)
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(AppError::Conflict(
            "This request changed while you were looking at it. Reload the page and try again."
                .into(),
        ))
    }
}
