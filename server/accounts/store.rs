//! Account registry SQL. Seeds come from the admin-controlled config file; the ExternalId is
//! generated here on first registration and never changes afterwards.

use sqlx::Row;

use super::{Account, AwsAccountId, EnvClass, Region, RoleArn};
use crate::audit::{self, Actor, Entry};
use crate::config::AccountSeed;
use crate::db::{Db, now_ms};

/// Registers or updates the configured accounts; an audit record for each change.
pub async fn apply_seeds(db: &Db, seeds: &[AccountSeed]) -> anyhow::Result<()> {
    for seed in seeds {
        let id = AwsAccountId::try_from(seed.id.clone()).map_err(anyhow::Error::msg)?;
        let role = RoleArn::try_from(seed.deploy_role_arn.clone()).map_err(anyhow::Error::msg)?;
        anyhow::ensure!(
            role.account_id() == id.as_str(),
            "account {id}: deploy role {role} belongs to another account"
        );
        let exec_role = seed
            .cfn_execution_role_arn
            .clone()
            .map(RoleArn::try_from)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if let Some(exec) = &exec_role {
            anyhow::ensure!(
                exec.account_id() == id.as_str(),
                "account {id}: execution role {exec} belongs to another account"
            );
        }
        let exec_text = exec_role.as_ref().map(|r| r.to_string());
        let regions: Vec<Region> = seed
            .regions
            .iter()
            .map(|r| Region::try_from(r.clone()).map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(
            !regions.is_empty(),
            "account {id}: list at least one region"
        );
        let regions_csv = regions
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let now = now_ms();
        let mut tx = db.begin().await?;
        let existing = sqlx::query(
            "select name, env_class, deploy_role_arn, regions, cfn_execution_role_arn \
             from accounts where id = $1",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let teams_before: Vec<String> =
            sqlx::query("select team from account_teams where account_id = $1 order by team")
                .bind(id.to_string())
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        let mut teams = seed.teams.clone();
        teams.sort();
        teams.dedup();
        let action = match existing {
            None => {
                sqlx::query(
                    "insert into accounts (id, name, env_class, deploy_role_arn, external_id, regions, \
                     cfn_execution_role_arn, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                )
                .bind(id.to_string())
                .bind(seed.name.clone())
                .bind(seed.env_class.as_str())
                .bind(role.to_string())
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(regions_csv.clone())
                .bind(exec_text.clone())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Some("account.registered")
            }
            Some(row) => {
                let same = row.try_get::<String, _>(0)? == seed.name
                    && row.try_get::<String, _>(1)? == seed.env_class.as_str()
                    && row.try_get::<String, _>(2)? == role.as_str()
                    && row.try_get::<String, _>(3)? == regions_csv
                    && row.try_get::<Option<String>, _>(4)? == exec_text
                    && teams_before == teams;
                if same {
                    None
                } else {
                    sqlx::query(
                        "update accounts set name = $1, env_class = $2, deploy_role_arn = $3, \
                         regions = $4, cfn_execution_role_arn = $5, updated_at = $6 where id = $7",
                    )
                    .bind(seed.name.clone())
                    .bind(seed.env_class.as_str())
                    .bind(role.to_string())
                    .bind(regions_csv.clone())
                    .bind(exec_text.clone())
                    .bind(now)
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await?;
                    Some("account.updated")
                }
            }
        };
        let Some(action) = action else { continue };
        sqlx::query("delete from account_teams where account_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        for team in &teams {
            sqlx::query("insert into account_teams (account_id, team) values ($1, $2)")
                .bind(id.to_string())
                .bind(team.clone())
                .execute(&mut *tx)
                .await?;
        }
        let entry = Entry::new(&Actor::system("config"), action, "account", id.to_string()).detail(
            serde_json::json!({
                "name": seed.name, "env_class": seed.env_class, "deploy_role_arn": role,
                "cfn_execution_role_arn": exec_text, "regions": regions_csv, "teams": teams,
            }),
        );
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
    }
    Ok(())
}

fn from_row(row: &sqlx::any::AnyRow, teams: Vec<String>) -> anyhow::Result<Account> {
    let regions: String = row.try_get(5)?;
    Ok(Account {
        id: AwsAccountId::try_from(row.try_get::<String, _>(0)?).map_err(anyhow::Error::msg)?,
        name: row.try_get(1)?,
        env_class: row
            .try_get::<String, _>(2)?
            .parse::<EnvClass>()
            .map_err(anyhow::Error::msg)?,
        deploy_role_arn: RoleArn::try_from(row.try_get::<String, _>(3)?)
            .map_err(anyhow::Error::msg)?,
        external_id: row.try_get(4)?,
        cfn_execution_role_arn: row
            .try_get::<Option<String>, _>(6)?
            .map(RoleArn::try_from)
            .transpose()
            .map_err(anyhow::Error::msg)?,
        regions: regions
            .split(',')
            .filter_map(|r| Region::try_from(r.to_string()).ok())
            .collect(),
        teams,
    })
}

const SELECT: &str = "select id, name, env_class, deploy_role_arn, external_id, regions, \
    cfn_execution_role_arn from accounts";

/// Every registered account, by environment class then name.
pub async fn list(db: &Db) -> anyhow::Result<Vec<Account>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} order by env_class, name"
    )))
    .fetch_all(db.pool())
    .await?;
    let team_rows = sqlx::query("select account_id, team from account_teams order by team")
        .fetch_all(db.pool())
        .await?;
    let mut out = Vec::new();
    for row in &rows {
        let id: String = row.try_get(0)?;
        let mut teams = Vec::new();
        for t in &team_rows {
            if t.try_get::<String, _>(0)? == id {
                teams.push(t.try_get::<String, _>(1)?);
            }
        }
        out.push(from_row(row, teams)?);
    }
    Ok(out)
}

/// The teams of one account.
async fn teams_of(db: &Db, id: &str) -> anyhow::Result<Vec<String>> {
    sqlx::query("select team from account_teams where account_id = $1 order by team")
        .bind(id.to_string())
        .fetch_all(db.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}

/// The accounts a team may deploy into (workload classes only), by class then name.
pub async fn for_team(db: &Db, team: &str) -> anyhow::Result<Vec<Account>> {
    let rows = sqlx::query(
        "select a.id, a.name, a.env_class, a.deploy_role_arn, a.external_id, a.regions, \
         a.cfn_execution_role_arn from accounts a join account_teams t on t.account_id = a.id \
         where t.team = $1 and a.env_class <> 'core' order by a.env_class, a.name",
    )
    .bind(team.to_string())
    .fetch_all(db.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0)?;
        out.push(from_row(row, teams_of(db, &id).await?)?);
    }
    Ok(out)
}

pub async fn get(db: &Db, id: &str) -> anyhow::Result<Option<Account>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1")))
        .bind(id.to_string())
        .fetch_optional(db.pool())
        .await?;
    match row {
        Some(row) => Ok(Some(from_row(&row, teams_of(db, id).await?)?)),
        None => Ok(None),
    }
}
