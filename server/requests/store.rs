//! Request SQL. Lists read only the columns they show, in bounded keyset pages; the template is
//! read only with one request. Status changes are compare-and-set on `version`, and every write
//! path locks the request row first (then deployments, then the audit chain), so concurrent
//! decisions serialise in one order and never deadlock.

use std::collections::BTreeMap;

use sqlx::Row;

use super::input::Prepared;
use super::{RequestStatus, ServiceRequest};
use crate::accounts::EnvClass;
use crate::db::{Backend, Db, Sql, Tx, now_ms};
use crate::error::AppError;

const SELECT: &str = "select r.id, r.number, r.title, r.team, r.requester_id, \
    coalesce(u.name, u.subject), r.blueprint_slug, r.blueprint_version, r.blueprint_digest, \
    r.account_id, a.name, r.region, r.env_class, r.env_name, r.stack_name, r.params_json, \
    t.body, r.template_digest, r.content_hash, r.policy_json, r.status, r.status_reason, \
    r.version, r.created_at, r.updated_at \
    from service_requests r join users u on u.id = r.requester_id \
    join accounts a on a.id = r.account_id \
    left join rendered_templates t on t.digest = r.template_digest";

fn env_class(s: &str) -> Result<EnvClass, AppError> {
    s.parse::<EnvClass>()
        .map_err(|e| anyhow::anyhow!("stored request: {e}").into())
}

fn status(s: &str) -> Result<RequestStatus, AppError> {
    RequestStatus::parse(s)
        .ok_or_else(|| anyhow::anyhow!("stored request has unknown status {s}").into())
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ServiceRequest, AppError> {
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
            .map_err(|e| anyhow::anyhow!("stored request parameters: {e}"))?,
        template_body: row.try_get::<Option<String>, _>(16)?.unwrap_or_default(),
        template_digest: row.try_get(17)?,
        content_hash: row.try_get(18)?,
        policy: serde_json::from_str(&policy).unwrap_or_default(),
        status: status(&row.try_get::<String, _>(20)?)?,
        status_reason: row.try_get(21)?,
        version: row.try_get(22)?,
        created_at: row.try_get(23)?,
        updated_at: row.try_get(24)?,
    })
}

/// A request as a list shows it: no parameters, policy or template.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub requester_id: String,
    pub requester_name: String,
    pub blueprint_slug: String,
    pub blueprint_version: String,
    pub account_id: String,
    pub account_name: String,
    pub region: String,
    pub env_class: EnvClass,
    pub env_name: String,
    pub stack_name: String,
    pub status: RequestStatus,
    pub status_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SUMMARY: &str = "select r.id, r.number, r.title, r.team, r.requester_id, \
    coalesce(u.name, u.subject) as requester_name, r.blueprint_slug, r.blueprint_version, \
    r.account_id, a.name as account_name, r.region, r.env_class, r.env_name, r.stack_name, \
    r.status, r.status_reason, r.created_at, r.updated_at \
    from service_requests r join users u on u.id = r.requester_id \
    join accounts a on a.id = r.account_id";

fn summary_from_row(row: &sqlx::any::AnyRow) -> Result<Summary, AppError> {
    Ok(Summary {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        title: row.try_get(2)?,
        team: row.try_get(3)?,
        requester_id: row.try_get(4)?,
        requester_name: row.try_get(5)?,
        blueprint_slug: row.try_get(6)?,
        blueprint_version: row.try_get(7)?,
        account_id: row.try_get(8)?,
        account_name: row.try_get(9)?,
        region: row.try_get(10)?,
        env_class: env_class(&row.try_get::<String, _>(11)?)?,
        env_name: row.try_get(12)?,
        stack_name: row.try_get(13)?,
        status: status(&row.try_get::<String, _>(14)?)?,
        status_reason: row.try_get(15)?,
        created_at: row.try_get(16)?,
        updated_at: row.try_get(17)?,
    })
}

/// A position in a list: the `(created_at, id)` of the last row shown. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: i64,
    pub id: String,
}

impl Cursor {
    pub fn after(s: &Summary) -> Cursor {
        Cursor {
            created_at: s.created_at,
            id: s.id.clone(),
        }
    }

    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}.{}", self.created_at, self.id))
    }

    /// `None` for anything this portal did not hand out.
    pub fn decode(s: &str) -> Option<Cursor> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (at, id) = text.split_once('.')?;
        let valid_id = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if !valid_id {
            return None;
        }
        Some(Cursor {
            created_at: at.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// Which way a list runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// What to list. `teams: None` means every team (auditors, admins, global approvers).
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    pub teams: Option<&'a [String]>,
    /// Statuses to include; empty means any.
    pub statuses: &'a [RequestStatus],
    /// Only pending requests that this user may still decide on: not theirs, and not decided by
    /// them on the current content (the approvals inbox).
    pub undecided_by: Option<&'a str>,
    /// Only this blueprint.
    pub blueprint: Option<&'a str>,
    /// Only this class of environment.
    pub env_class: Option<EnvClass>,
    pub order: Order,
    pub after: Option<&'a Cursor>,
    pub limit: i64,
}

impl<'a> ListQuery<'a> {
    pub fn new(teams: Option<&'a [String]>, statuses: &'a [RequestStatus]) -> ListQuery<'a> {
        ListQuery {
            teams,
            statuses,
            undecided_by: None,
            blueprint: None,
            env_class: None,
            order: Order::NewestFirst,
            after: None,
            limit: 20,
        }
    }
}

/// The largest page any list returns.
pub const MAX_PAGE: i64 = 100;

/// The conditions of one (team, status) slice, appended to `sql`.
fn slice_filter(sql: &mut Sql, q: &ListQuery<'_>, team: Option<&str>, st: Option<RequestStatus>) {
    sql.push(" where 1 = 1");
    if let Some(team) = team {
        sql.push(" and r.team = ").text(team);
    }
    if let Some(st) = st {
        sql.push(" and r.status = ").text(st.as_str());
    }
    if let Some(bp) = q.blueprint {
        sql.push(" and r.blueprint_slug = ").text(bp);
    }
    if let Some(class) = q.env_class {
        sql.push(" and r.env_class = ").text(class.as_str());
    }
    if let Some(user) = q.undecided_by {
        sql.push(" and r.requester_id <> ").text(user);
        sql.push(
            " and not exists (select 1 from approvals p where p.request_id = r.id \
             and p.content_hash = r.content_hash and p.approver_id = ",
        )
        .text(user)
        .push(")");
    }
    if let Some(c) = q.after {
        let cmp = match q.order {
            Order::NewestFirst => "<",
            Order::OldestFirst => ">",
        };
        sql.push(&format!(" and (r.created_at, r.id) {cmp} ("))
            .int(c.created_at)
            .push(", ")
            .text(&c.id)
            .push(")");
    }
}

/// Every (team, status) pair the query spans: each is one index range (team, status, time, id),
/// so each slice is read in order and stops at the page size.
fn slices<'a>(q: &ListQuery<'a>) -> Vec<(Option<&'a str>, Option<RequestStatus>)> {
    let teams: Vec<Option<&str>> = match q.teams {
        Some(t) => t.iter().map(|t| Some(t.as_str())).collect(),
        None => vec![None],
    };
    let statuses: Vec<Option<RequestStatus>> = if q.statuses.is_empty() {
        vec![None]
    } else {
        q.statuses.iter().copied().map(Some).collect()
    };
    teams
        .iter()
        .flat_map(|t| statuses.iter().map(move |s| (*t, *s)))
        .collect()
}

/// One page of a list, and where the next one starts (`None` at the end).
pub async fn list(db: &Db, q: &ListQuery<'_>) -> Result<(Vec<Summary>, Option<Cursor>), AppError> {
    if q.teams.is_some_and(|t| t.is_empty()) {
        return Ok((Vec::new(), None));
    }
    let limit = q.limit.clamp(1, MAX_PAGE);
    let dir = match q.order {
        Order::NewestFirst => "desc",
        Order::OldestFirst => "asc",
    };
    // One bounded statement: the union of the slices, each already ordered and cut at the page
    // size (plus one, to know whether another page follows), then merged and cut again.
    let mut sql = Sql::new("select * from (");
    for (i, (team, st)) in slices(q).into_iter().enumerate() {
        if i > 0 {
            sql.push(" union all ");
        }
        sql.push("select * from (").push(SUMMARY);
        slice_filter(&mut sql, q, team, st);
        sql.push(&format!(" order by r.created_at {dir}, r.id {dir} limit "))
            .int(limit + 1)
            .push(") s");
        sql.push(&i.to_string());
    }
    sql.push(&format!(
        ") page order by created_at {dir}, id {dir} limit "
    ))
    .int(limit + 1);
    let rows = sql.query().fetch_all(db.pool()).await?;
    let mut items = rows
        .iter()
        .map(summary_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(Cursor::after)
    } else {
        None
    };
    Ok((items, next))
}

/// How many requests the query spans, counting no further than `cap` (pages show "cap+").
pub async fn count(db: &Db, q: &ListQuery<'_>, cap: i64) -> Result<i64, AppError> {
    if q.teams.is_some_and(|t| t.is_empty()) {
        return Ok(0);
    }
    let mut sql = Sql::new("select count(*) from (");
    for (i, (team, st)) in slices(q).into_iter().enumerate() {
        if i > 0 {
            sql.push(" union all ");
        }
        sql.push("select * from (select r.id from service_requests r");
        slice_filter(&mut sql, q, team, st);
        sql.push(" limit ").int(cap).push(") s");
        sql.push(&i.to_string());
    }
    sql.push(") counted");
    let n: i64 = sql.query().fetch_one(db.pool()).await?.try_get(0)?;
    Ok(n.min(cap))
}

/// Takes the next request number (under the counter row's lock, until the transaction ends).
async fn next_number(tx: &mut Tx) -> Result<i64, AppError> {
    let n: i64 = sqlx::query(
        "update counters set value = value + 1 where name = 'request_number' returning value",
    )
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(n)
}

/// Stores a rendered template once per digest.
pub async fn store_template(tx: &mut Tx, digest: &str, body: &str) -> Result<(), AppError> {
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
) -> Result<(String, i64), AppError> {
    let id = uuid::Uuid::new_v4().to_string();
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
         created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, 1, $19, $19)",
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

/// Reads a request inside a write transaction and locks its row until the transaction ends
/// (PostgreSQL `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already holds the only write lock).
/// Every path that decides on a request calls this first: the one lock order is request row,
/// then deployment rows, then the audit chain.
pub async fn lock(
    tx: &mut Tx,
    backend: Backend,
    id: &str,
) -> Result<Option<ServiceRequest>, AppError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = Cursor {
            created_at: 1_764_000_000_123,
            id: "0b3e0a0e-7d4f-4f6e-9a55-6b0f7f1d2c3a".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "!!", "bm90LWEtY3Vyc29y", "MTIzLg", "YWJjLjEyMw"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_list_spans_one_slice_per_team_and_status() {
        let teams = vec!["a".to_string(), "b".to_string()];
        let statuses = [RequestStatus::Draft, RequestStatus::Deployed];
        assert_eq!(slices(&ListQuery::new(Some(&teams), &statuses)).len(), 4);
        assert_eq!(slices(&ListQuery::new(None, &[])).len(), 1);
        let q = ListQuery::new(Some(&teams), &[]);
        let mut sql = Sql::new("");
        slice_filter(&mut sql, &q, Some("a"), None);
        assert_eq!(sql.sql(), " where 1 = 1 and r.team = $1");
    }
}
