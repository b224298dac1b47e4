//! Environments: the deployed networks of a team (requests of an `environment` blueprint whose
//! stack is deployed), with the outputs of their last successful deployment, which workloads
//! take as inputs. Read in one bounded statement each.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Sql, StoreError};
use crate::ids::EnvClass;

/// One environment of a team, as the form, the API and a workload request see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// The id of the request that created it.
    pub id: String,
    pub name: String,
    pub team: String,
    pub account_id: String,
    pub account_name: String,
    pub region: String,
    pub env_class: EnvClass,
    pub blueprint: String,
    pub status: String,
    /// Its stack's outputs, by key.
    pub outputs: BTreeMap<String, String>,
}

/// The most environments a list returns (a team has tens).
pub const MAX_ENVIRONMENTS: i64 = 200;

/// The latest deployed request of each stack of an environment blueprint; its outputs from its
/// last successful deployment.
const SELECT: &str = "select r.id, r.env_name, r.team, r.account_id, a.name, r.region, \
    r.env_class, r.blueprint_slug, r.status, \
    (select d.outputs_json from deployments d where d.request_id = r.id \
     and d.status = 'succeeded' order by d.finished_at desc limit 1) \
    from service_requests r join accounts a on a.id = r.account_id \
    where r.kind = 'environment' and r.status = 'deployed' \
    and not exists (select 1 from service_requests n where n.account_id = r.account_id \
    and n.region = r.region and n.stack_name = r.stack_name and n.status = 'deployed' \
    and n.created_at > r.created_at)";

#[derive(serde::Deserialize)]
struct StoredOutput {
    key: String,
    value: String,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Environment, StoreError> {
    let class: String = row.try_get(6)?;
    let outputs: Option<String> = row.try_get(9)?;
    let outputs: Vec<StoredOutput> = match outputs {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| StoreError::unreadable("environment outputs", e))?,
        None => Vec::new(),
    };
    Ok(Environment {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        team: row.try_get(2)?,
        account_id: row.try_get(3)?,
        account_name: row.try_get(4)?,
        region: row.try_get(5)?,
        env_class: class
            .parse()
            .map_err(|_| StoreError::corrupt(format_args!("environment class '{class}'")))?,
        blueprint: row.try_get(7)?,
        status: row.try_get(8)?,
        outputs: outputs.into_iter().map(|o| (o.key, o.value)).collect(),
    })
}

/// The environments of `teams` (`None`: every team), by team and name, at most
/// [`MAX_ENVIRONMENTS`].
pub async fn list(db: &Db, teams: Option<&[String]>) -> Result<Vec<Environment>, StoreError> {
    let mut sql = Sql::new(SELECT);
    match teams {
        Some([]) => return Ok(Vec::new()),
        Some(teams) => {
            let names: Vec<&str> = teams.iter().map(String::as_str).collect();
            sql.push(" and r.team in ").text_list(&names);
        }
        None => {}
    }
    sql.push(&format!(
        " order by r.team, r.env_name, r.id limit {MAX_ENVIRONMENTS}"
    ));
    let rows = sql.query().fetch_all(db.pool()).await?;
    rows.iter().map(from_row).collect()
}

/// One environment by the id of its request; `None` when there is no deployed environment with
/// that id (never deployed, replaced by a later request, or not an environment).
pub async fn get(db: &Db, id: &str) -> Result<Option<Environment>, StoreError> {
    let mut sql = Sql::new(SELECT);
    sql.push(" and r.id = ").text(id);
    let row = sql.query().fetch_optional(db.pool()).await?;
    row.as_ref().map(from_row).transpose()
}

/// A request as a link on another request's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Linked {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub status: String,
}

/// The most workloads an environment's page lists.
pub const MAX_WORKLOADS: i64 = 50;

fn linked_row(row: &sqlx::any::AnyRow) -> Result<Linked, StoreError> {
    Ok(Linked {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        title: row.try_get(2)?,
        status: row.try_get(3)?,
    })
}

/// The workloads requested into an environment, newest first, at most [`MAX_WORKLOADS`].
pub async fn workloads(db: &Db, environment_id: &str) -> Result<Vec<Linked>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select id, number, title, status from service_requests where environment_id = $1 \
         order by created_at desc, id desc limit {MAX_WORKLOADS}"
    )))
    .bind(environment_id.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(linked_row).collect()
}

/// One request as a link.
pub async fn linked(db: &Db, id: &str) -> Result<Option<Linked>, StoreError> {
    let row = sqlx::query("select id, number, title, status from service_requests where id = $1")
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(linked_row).transpose()
}
