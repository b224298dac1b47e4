//! Account registry SQL. Seeds come from the admin-controlled config file; the ExternalId is
//! generated here on first registration and never changes afterwards.

use sqlx::Row;

use super::{Account, AccountSpec, AwsAccountId, EnvClass, Region, RoleArn};
use crate::audit::{self, Actor, Entry};
use crate::config::AccountSeed;
use crate::db::{Db, StoreError, Tx, now_ms};

/// Registers or updates the configured accounts; an audit record for each change. A seed that
/// does not check out stops the start with a message naming it.
pub async fn apply_seeds(db: &Db, seeds: &[AccountSeed]) -> anyhow::Result<()> {
    let specs = seeds
        .iter()
        .map(AccountSpec::from_seed)
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    for spec in &specs {
        let mut tx = db.begin().await?;
        upsert(&mut tx, spec, &Actor::system("config")).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Registers an account or updates it to match `spec`, with an audit record naming what it
/// became; returns the audit action, or `None` when nothing changed. The ExternalId is generated
/// on first registration and never changed afterwards.
pub async fn upsert(
    tx: &mut Tx,
    spec: &AccountSpec,
    actor: &Actor,
) -> Result<Option<&'static str>, StoreError> {
    let before = stored_spec(tx, &spec.id).await?;
    if before.as_ref() == Some(spec) {
        return Ok(None);
    }
    let exec = spec.cfn_execution_role_arn.as_ref().map(|r| r.to_string());
    sqlx::query(
        "insert into accounts (id, name, env_class, deploy_role_arn, external_id, regions, \
         cfn_execution_role_arn, created_at, updated_at, settings_json) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) \
         on conflict (id) do update set name = excluded.name, env_class = excluded.env_class, \
         deploy_role_arn = excluded.deploy_role_arn, regions = excluded.regions, \
         cfn_execution_role_arn = excluded.cfn_execution_role_arn, \
         settings_json = excluded.settings_json, updated_at = excluded.updated_at",
    )
    .bind(spec.id.to_string())
    .bind(spec.name.clone())
    .bind(spec.env_class.as_str())
    .bind(spec.deploy_role_arn.to_string())
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(spec.regions_csv())
    .bind(exec.clone())
    .bind(now_ms())
    .bind(StoreError::json("account settings", &spec.settings)?)
    .execute(&mut **tx)
    .await?;
    sqlx::query("delete from account_teams where account_id = $1")
        .bind(spec.id.to_string())
        .execute(&mut **tx)
        .await?;
    for team in &spec.teams {
        sqlx::query("insert into account_teams (account_id, team) values ($1, $2)")
            .bind(spec.id.to_string())
            .bind(team.clone())
            .execute(&mut **tx)
            .await?;
    }
    let action = if before.is_some() {
        "account.updated"
    } else {
        "account.registered"
    };
    let entry =
        Entry::new(actor, action, "account", spec.id.to_string()).detail(serde_json::json!({
            "name": spec.name, "env_class": spec.env_class,
            "deploy_role_arn": spec.deploy_role_arn, "cfn_execution_role_arn": exec,
            "regions": spec.regions_csv(), "teams": spec.teams, "settings": spec.settings,
        }));
    audit::store::append(tx, entry).await?;
    Ok(Some(action))
}

/// The account as stored, in the shape of a spec, for comparing (one row and its teams).
async fn stored_spec(tx: &mut Tx, id: &AwsAccountId) -> Result<Option<AccountSpec>, StoreError> {
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?
    else {
        return Ok(None);
    };
    let teams = sqlx::query("select team from account_teams where account_id = $1 order by team")
        .bind(id.to_string())
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let a = from_row(&row, teams)?;
    Ok(Some(AccountSpec {
        id: a.id,
        name: a.name,
        env_class: a.env_class,
        deploy_role_arn: a.deploy_role_arn,
        cfn_execution_role_arn: a.cfn_execution_role_arn,
        regions: a.regions,
        teams: a.teams,
        settings: a.settings,
    }))
}

fn from_row(row: &sqlx::any::AnyRow, teams: Vec<String>) -> Result<Account, StoreError> {
    let regions: String = row.try_get(5)?;
    let corrupt = |what: &str, e: String| StoreError::corrupt(format_args!("account {what}: {e}"));
    Ok(Account {
        id: AwsAccountId::try_from(row.try_get::<String, _>(0)?).map_err(|e| corrupt("id", e))?,
        name: row.try_get(1)?,
        env_class: row
            .try_get::<String, _>(2)
            .map(|c| EnvClass::named(&c))?
            .map_err(|e| corrupt("class", e))?,
        deploy_role_arn: RoleArn::try_from(row.try_get::<String, _>(3)?)
            .map_err(|e| corrupt("deploy role", e))?,
        external_id: row.try_get(4)?,
        cfn_execution_role_arn: row
            .try_get::<Option<String>, _>(6)?
            .map(RoleArn::try_from)
            .transpose()
            .map_err(|e| corrupt("execution role", e))?,
        regions: regions
            .split(',')
            .map(|r| Region::try_from(r.to_string()).map_err(|e| corrupt("regions", e)))
            .collect::<Result<_, _>>()?,
        teams,
        settings: serde_json::from_str(&row.try_get::<String, _>(7)?)
            .map_err(|e| StoreError::unreadable("account settings", e))?,
    })
}

const SELECT: &str = "select id, name, env_class, deploy_role_arn, external_id, regions, \
    cfn_execution_role_arn, settings_json from accounts";

/// Every registered account, by environment class then name (the registry is small: tens of
/// accounts, configured by administrators).
pub async fn list(db: &Db) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} order by env_class, name, id"
    )))
    .fetch_all(db.pool())
    .await?;
    let teams = sqlx::query("select account_id, team from account_teams order by team")
        .fetch_all(db.pool())
        .await?;
    with_teams(&rows, &teams)
}

/// Joins account rows with `(account_id, team)` rows.
fn with_teams(
    rows: &[sqlx::any::AnyRow],
    team_rows: &[sqlx::any::AnyRow],
) -> Result<Vec<Account>, StoreError> {
    let mut by_account: std::collections::HashMap<String, Vec<String>> = Default::default();
    for t in team_rows {
        by_account
            .entry(t.try_get(0)?)
            .or_default()
            .push(t.try_get(1)?);
    }
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0)?;
            from_row(row, by_account.remove(&id).unwrap_or_default())
        })
        .collect()
}

/// The accounts a team may deploy into (workload classes only), by class then name.
pub async fn for_team(db: &Db, team: &str) -> Result<Vec<Account>, StoreError> {
    let rows = sqlx::query(
        "select a.id, a.name, a.env_class, a.deploy_role_arn, a.external_id, a.regions, \
         a.cfn_execution_role_arn, a.settings_json from accounts a join account_teams t on t.account_id = a.id \
         where t.team = $1 and a.env_class <> 'core' order by a.env_class, a.name, a.id",
    )
    .bind(team.to_string())
    .fetch_all(db.pool())
    .await?;
    let teams = sqlx::query(
        "select o.account_id, o.team from account_teams o \
         join account_teams t on t.account_id = o.account_id where t.team = $1 order by o.team",
    )
    .bind(team.to_string())
    .fetch_all(db.pool())
    .await?;
    with_teams(&rows, &teams)
}

/// One account by id.
pub async fn get(db: &Db, id: &str) -> Result<Option<Account>, StoreError> {
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?
    else {
        return Ok(None);
    };
    let teams = sqlx::query(
        "select account_id, team from account_teams where account_id = $1 order by team",
    )
    .bind(id.to_string())
    .fetch_all(db.pool())
    .await?;
    Ok(with_teams(std::slice::from_ref(&row), &teams)?.pop())
}
