//! Lists of requests: bounded keyset pages and capped counts, each one statement; and all the
//! lists and counts a page shows together in one statement ([`batch`]).

use crate::db::StoreError;
use crate::db::{Cell, CellKind, Db, Sql};
use crate::ids::EnvClass;
use serde::Deserialize;

use crate::requests::RequestStatus;

/// A request as a list shows it: no parameters, policy or template.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// What the change set showed (the column holds them as JSON text).
    #[serde(deserialize_with = "flags_from_json_text")]
    pub risk_flags: Vec<crate::change::RiskFlag>,
    /// An admin has disabled the requester (their pending requests are flagged).
    #[serde(deserialize_with = "bool_from_int")]
    pub requester_disabled: bool,
}

/// A flag from its column (an integer), or from a boolean (a summary serialized again).
fn bool_from_int<'de, D>(d: D) -> Result<bool, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Int(i64),
        Bool(bool),
    }
    Ok(match Either::deserialize(d)? {
        Either::Int(i) => i != 0,
        Either::Bool(b) => b,
    })
}

/// Risk flags from their column (JSON text), or from an array (a summary serialized again).
fn flags_from_json_text<'de, D>(d: D) -> Result<Vec<crate::change::RiskFlag>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        List(Vec<crate::change::RiskFlag>),
    }
    match Either::deserialize(d)? {
        Either::List(l) => Ok(l),
        Either::Text(t) => serde_json::from_str(&t).map_err(serde::de::Error::custom),
    }
}

const SUMMARY: &str = "select r.id, r.number, r.title, r.team, r.requester_id, \
    coalesce(u.name, u.subject) as requester_name, r.blueprint_slug, r.blueprint_version, \
    r.account_id, a.name as account_name, r.region, r.env_class, r.env_name, r.stack_name, \
    r.status, r.status_reason, r.created_at, r.updated_at, r.risk_flags_json, \
    u.disabled as requester_disabled \
    from service_requests r join users u on u.id = r.requester_id \
    join accounts a on a.id = r.account_id";

/// The columns of [`SUMMARY`], named as [`Summary`]'s fields.
const SUMMARY_COLUMNS: [&str; 20] = [
    "id",
    "number",
    "title",
    "team",
    "requester_id",
    "requester_name",
    "blueprint_slug",
    "blueprint_version",
    "account_id",
    "account_name",
    "region",
    "env_class",
    "env_name",
    "stack_name",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "risk_flags_json",
    "requester_disabled",
];

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

const PENDING: [RequestStatus; 1] = [RequestStatus::PendingApproval];

/// The approvals inbox of a reviewer (whose id is `user_id`, reviewing `scope`'s teams, `None`
/// for every team): pending requests of those teams, not theirs and not yet decided by them on
/// their current content, oldest first.
pub fn inbox_query<'a>(user_id: &'a str, scope: Option<&'a [String]>) -> ListQuery<'a> {
    let mut q = ListQuery::new(scope, &PENDING);
    q.undecided_by = Some(user_id);
    q.order = Order::OldestFirst;
    q
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
        // Decided on the change set now waiting for review (an earlier one's decision is void).
        sql.push(
            " and not exists (select 1 from approvals p join deployments d \
             on d.request_id = p.request_id and d.change_set_arn = p.change_set_arn \
             and d.status = 'awaiting_approval' where p.request_id = r.id and p.approver_id = ",
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

fn direction(order: Order) -> &'static str {
    match order {
        Order::NewestFirst => "desc",
        Order::OldestFirst => "asc",
    }
}

/// Appends one page of `q` (one row per request, plus one to tell whether a next page exists):
/// the union of its slices, each already ordered and cut at the page size, merged and cut again.
/// Limits are literals (clamped integers): SQLite re-prepares a statement whose `LIMIT` is a
/// bound parameter every time it is re-bound.
fn push_page(sql: &mut Sql, q: &ListQuery<'_>) {
    let (limit, dir) = (q.limit.clamp(1, MAX_PAGE) + 1, direction(q.order));
    sql.push("select * from (");
    for (i, (team, st)) in slices(q).into_iter().enumerate() {
        if i > 0 {
            sql.push(" union all ");
        }
        sql.push("select * from (").push(SUMMARY);
        slice_filter(sql, q, team, st);
        sql.push(&format!(
            " order by r.created_at {dir}, r.id {dir} limit {limit}) s{i}"
        ));
    }
    sql.push(&format!(
        ") page order by created_at {dir}, id {dir} limit {limit}"
    ));
}

/// Appends a statement whose one value is the page of `q`, as a JSON array of [`Summary`]: the
/// page comes back as one row, not a row at a time.
fn push_list(sql: &mut Sql, db: &Db, q: &ListQuery<'_>) {
    let dir = direction(q.order);
    let (open, close) = db.json_rows(&SUMMARY_COLUMNS, &format!("created_at {dir}, id {dir}"));
    sql.push(&open);
    if q.teams.is_some_and(|t| t.is_empty()) {
        sql.push(SUMMARY).push(" where 1 = 0");
    } else {
        push_page(sql, q);
    }
    sql.push(&close);
}

/// Appends a statement counting the requests `q` spans, no further than `cap`.
fn push_count(sql: &mut Sql, q: &ListQuery<'_>, cap: i64) {
    if q.teams.is_some_and(|t| t.is_empty()) {
        sql.push("select 0");
        return;
    }
    sql.push("select count(*) from (");
    for (i, (team, st)) in slices(q).into_iter().enumerate() {
        if i > 0 {
            sql.push(" union all ");
        }
        sql.push("select * from (select r.id from service_requests r");
        slice_filter(sql, q, team, st);
        sql.push(&format!(" limit {}) s{i}", cap.max(1)));
    }
    sql.push(") counted");
}

/// Splits a page read with one extra row into the page and the cursor of the next one.
fn into_page(mut items: Vec<Summary>, q: &ListQuery<'_>) -> (Vec<Summary>, Option<Cursor>) {
    let limit = q.limit.clamp(1, MAX_PAGE) as usize;
    if items.len() > limit {
        items.truncate(limit);
        let next = items.last().map(Cursor::after);
        (items, next)
    } else {
        (items, None)
    }
}

fn parse_list(text: &str) -> Result<Vec<Summary>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::unreadable("list of requests", e))
}

/// One page of a list, and where the next one starts (`None` at the end): one statement.
pub async fn list(
    db: &Db,
    q: &ListQuery<'_>,
) -> Result<(Vec<Summary>, Option<Cursor>), StoreError> {
    let mut sql = Sql::default();
    push_list(&mut sql, db, q);
    let row = db.read_row(&sql, &[CellKind::Text]).await?;
    Ok(into_page(parse_list(text(&row, 0)?)?, q))
}

fn text(row: &[Cell], i: usize) -> Result<&str, StoreError> {
    match row.get(i) {
        Some(Cell::Text(t)) => Ok(t),
        _ => Err(StoreError::corrupt(format!("column {i} of a list read"))),
    }
}

fn int(row: &[Cell], i: usize) -> Result<i64, StoreError> {
    match row.get(i) {
        Some(Cell::Int(n)) => Ok(*n),
        _ => Err(StoreError::corrupt(format!("column {i} of a count"))),
    }
}

/// How many requests the query spans, counting no further than `cap` (pages show "cap+").
pub async fn count(db: &Db, q: &ListQuery<'_>, cap: i64) -> Result<i64, StoreError> {
    let mut sql = Sql::default();
    push_count(&mut sql, q, cap);
    let row = db.read_row(&sql, &[CellKind::Int]).await?;
    Ok(int(&row, 0)?.min(cap))
}

/// One part of what a page reads in one [`batch`].
pub enum Part<'a> {
    List(ListQuery<'a>),
    Count(ListQuery<'a>, i64),
}

/// What a [`batch`] read: its lists (each a page and the next cursor) and its counts, each in the
/// order of the parts.
#[derive(Debug, Default)]
pub struct Batch {
    pub lists: Vec<(Vec<Summary>, Option<Cursor>)>,
    pub counts: Vec<i64>,
}

/// Reads every list and count a page shows in one statement and one round trip: one row, a
/// column per part (a list as JSON text, a count as a number). Each part stays bounded.
pub async fn batch(db: &Db, parts: &[Part<'_>]) -> Result<Batch, StoreError> {
    let mut sql = Sql::new("select ");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push("(");
        match part {
            Part::List(q) => push_list(&mut sql, db, q),
            Part::Count(q, cap) => push_count(&mut sql, q, *cap),
        }
        sql.push(")");
    }
    let kinds: Vec<CellKind> = parts
        .iter()
        .map(|p| match p {
            Part::List(_) => CellKind::Text,
            Part::Count(..) => CellKind::Int,
        })
        .collect();
    let row = db.read_row(&sql, &kinds).await?;
    let mut out = Batch::default();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::List(q) => out.lists.push(into_page(parse_list(text(&row, i)?)?, q)),
            Part::Count(_, cap) => out.counts.push(int(&row, i)?.min(*cap)),
        }
    }
    Ok(out)
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
