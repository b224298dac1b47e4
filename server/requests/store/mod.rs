//! Request SQL. Lists read only the columns they show, in bounded keyset pages; the template is
//! read only with one request. Status changes are compare-and-set on `version`, and every write
//! path locks the request row first (then deployments, then the audit chain), so concurrent
//! decisions serialise in one order and never deadlock.

use std::collections::BTreeMap;

use sqlx::Row;

pub mod addresses;
pub mod environments;
mod lists;

pub use lists::{
    Batch, Cursor, ListQuery, MAX_PAGE, Order, Part, Summary, batch, count, inbox_query, list,
};

use super::input::Prepared;
use super::{RequestStatus, ServiceRequest};
use crate::db::StoreError;
use crate::db::{Backend, Db, Tx, now_ms};
use crate::ids::EnvClass;

const SELECT: &str = "select r.id, r.number, r.title, r.team, r.requester_id, \
    coalesce(u.name, u.subject), r.blueprint_slug, r.blueprint_version, r.blueprint_digest, \
    r.account_id, a.name, r.region, r.env_class, r.env_name, r.stack_name, r.params_json, \
    t.body, r.template_digest, r.content_hash, r.policy_json, r.status, r.status_reason, \
    r.version, r.created_at, r.updated_at, r.capabilities_json, r.kind, r.environment_id, \
    r.risk_flags_json, r.approval_mode, r.emergency_json, u.disabled, \
    coalesce(r.approval_policy_version, 1), p.rules_json \
    from service_requests r join users u on u.id = r.requester_id \
    join accounts a on a.id = r.account_id \
    left join rendered_templates t on t.digest = r.template_digest \
    left join approval_policies p on p.version = coalesce(r.approval_policy_version, 1)";

fn env_class(s: &str) -> Result<EnvClass, StoreError> {
    s.parse::<EnvClass>()
        .map_err(|_| StoreError::corrupt(format_args!("request's environment class '{s}'")))
}

fn status(s: &str) -> Result<RequestStatus, StoreError> {
    RequestStatus::parse(s)
        .ok_or_else(|| StoreError::corrupt(format_args!("request's status '{s}'")))
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ServiceRequest, StoreError> {
    let params: String = row.try_get(15)?;
    let policy: String = row.try_get(19)?;
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
        env_class: env_class(&row.try_get::<String, _>(12)?)?,
        env_name: row.try_get(13)?,
        stack_name: row.try_get(14)?,
        params: serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&params)
            .map_err(|e| StoreError::unreadable("request's parameters", e))?,
        template_body: row.try_get::<Option<String>, _>(16)?.unwrap_or_default(),
        template_digest: row.try_get(17)?,
        content_hash: row.try_get(18)?,
        policy: serde_json::from_str(&policy)
            .map_err(|e| StoreError::unreadable("request's policy results", e))?,
        status: status(&row.try_get::<String, _>(20)?)?,
        status_reason: row.try_get(21)?,
        version: row.try_get(22)?,
        created_at: row.try_get(23)?,
        updated_at: row.try_get(24)?,
        capabilities: serde_json::from_str(&row.try_get::<String, _>(25)?)
            .map_err(|e| StoreError::unreadable("request's capabilities", e))?,
        kind: row.try_get(26)?,
        environment_id: row.try_get(27)?,
        risk_flags: serde_json::from_str(&row.try_get::<String, _>(28)?)
            .map_err(|e| StoreError::unreadable("request's risk flags", e))?,
        approval_mode: row.try_get(29)?,
        emergency: row
            .try_get::<Option<String>, _>(30)?
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .map_err(|e| StoreError::unreadable("request's emergency release", e))?,
        requester_disabled: row.try_get::<i64, _>(31)? != 0,
        approval_policy_version: row.try_get(32)?,
        approval_rules: row
            .try_get::<Option<String>, _>(33)?
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|e| StoreError::unreadable("request's approval rules", e))?,
    })
}

/// Takes the next request number (under the counter row's lock, until the transaction ends).
async fn next_number(tx: &mut Tx) -> Result<i64, StoreError> {
    let n: i64 = sqlx::query(
        "update counters set value = value + 1 where name = 'request_number' returning value",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(n)
}

/// Stores a rendered template once per digest.
pub async fn store_template(tx: &mut Tx, digest: &str, body: &str) -> Result<(), StoreError> {
    sqlx::query(
        "insert into rendered_templates (digest, body, created_at) values ($1, $2, $3) \
         on conflict (digest) do nothing",
    )
    .bind(digest.to_string())
    .bind(body.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts a new request with the given status; returns its id and number.
pub async fn insert(
    tx: &mut Tx,
    p: &Prepared,
    requester_id: &str,
    status: RequestStatus,
    policy_json: &serde_json::Value,
) -> Result<(String, i64), StoreError> {
    let id = p.id.clone();
    let number = next_number(tx).await?;
    let now = now_ms();
    let title = format!(
        "{} '{}' in {} ({})",
        p.blueprint.name, p.name, p.account.name, p.region
    );
    store_template(tx, &p.rendered.digest, &p.rendered.body).await?;
    sqlx::query(
        "insert into service_requests (id, number, title, team, requester_id, blueprint_slug, \
         blueprint_version, blueprint_digest, account_id, region, env_class, env_name, stack_name, \
         params_json, template_digest, content_hash, policy_json, status, version, \
         created_at, updated_at, capabilities_json, kind, environment_id, \
         approval_policy_version) values ($1, $2, $3, $4, \
         $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, 1, $19, $19, $20, $21, \
         $22, (select max(version) from approval_policies))",
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
    .bind(p.rendered.params_json())
    .bind(p.rendered.digest.clone())
    .bind(p.content_hash.clone())
    .bind(policy_json.to_string())
    .bind(status.as_str())
    .bind(now)
    .bind(serde_json::Value::from(p.blueprint.capabilities.clone()).to_string())
    .bind(p.blueprint.kind.to_string())
    .bind(p.environment.as_ref().map(|e| e.id.clone()))
    .execute(&mut **tx)
    .await?;
    Ok((id, number))
}

pub async fn get(db: &Db, id: &str) -> Result<Option<ServiceRequest>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where r.id = $1")))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Reads a request inside a write transaction and locks its row until the transaction ends
/// (PostgreSQL `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already holds the only write lock).
/// Every path that decides on a request calls this first: the one lock order is request row,
/// then deployment rows, then the audit chain.
pub async fn lock(
    tx: &mut Tx,
    backend: Backend,
    id: &str,
) -> Result<Option<ServiceRequest>, StoreError> {
    let lock = match backend {
        Backend::Postgres => " for update of r",
        Backend::Sqlite => "",
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} where r.id = $1{lock}"
    )))
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Moves a request to `to` if it is still at `version`; `Conflict` when someone else moved it.
pub async fn set_status(
    tx: &mut Tx,
    id: &str,
    version: i64,
    to: RequestStatus,
    reason: Option<&str>,
) -> Result<(), StoreError> {
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
        Err(StoreError::Conflict(
            "This request changed while you were looking at it. Reload the page and try again."
                .into(),
        ))
    }
}

/// Records what the change set showed (its risk flags), in the worker's transaction.
pub async fn set_risk_flags(
    tx: &mut Tx,
    id: &str,
    flags: &[crate::change::RiskFlag],
) -> Result<(), StoreError> {
    sqlx::query("update service_requests set risk_flags_json = $1 where id = $2")
        .bind(StoreError::json("risk flags", flags)?)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records how the request was released (`approvals`, `auto`, `emergency`) and the break-glass
/// record, in the deciding transaction (after [`lock`]).
pub async fn set_release(
    tx: &mut Tx,
    id: &str,
    mode: &str,
    emergency: Option<&super::Emergency>,
) -> Result<(), StoreError> {
    let emergency = match emergency {
        Some(e) => Some(StoreError::json("emergency release", e)?),
        None => None,
    };
    sqlx::query(
        "update service_requests set approval_mode = $1, emergency_json = $2 where id = $3",
    )
    .bind(mode.to_string())
    .bind(emergency)
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Requests waiting for review since before `before` (ms), oldest first, at most `limit`.
pub async fn waiting_since(db: &Db, before: i64, limit: i64) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query(
        "select id from service_requests where status = 'pending_approval' and updated_at < $1 \
         order by updated_at limit $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// The parameters of what is deployed in the request's stack: those of the stack's last deployed
/// request (other than this one), as people read them; `None` for a new stack.
pub async fn deployed_params(
    db: &Db,
    r: &ServiceRequest,
) -> Result<Option<BTreeMap<String, String>>, StoreError> {
    let row = sqlx::query(
        "select params_json from service_requests where account_id = $1 and region = $2 \
         and stack_name = $3 and status = 'deployed' and id <> $4 \
         order by created_at desc limit 1",
    )
    .bind(r.account_id.clone())
    .bind(r.region.clone())
    .bind(r.stack_name.clone())
    .bind(r.id.clone())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let params: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(&row.try_get::<String, _>(0)?)
            .map_err(|e| StoreError::unreadable("request's parameters", e))?;
    Ok(Some(
        params
            .into_iter()
            .map(|(k, v)| {
                let shown = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, shown)
            })
            .collect(),
    ))
}
