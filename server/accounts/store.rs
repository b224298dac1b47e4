//! Account registry SQL. The config file seeds it at start; admins keep it in the portal. Every
//! change writes one audit record with `before` and `after`, in the change's transaction. The
//! ExternalId is generated on first registration and changes only when an admin rotates it.

use sqlx::Row;

use super::{
    Account, AccountSpec, AwsAccountId, EnvClass, LastCheck, ManagedBy, Purpose, Region, RoleArn,
    Status,
};
use crate::audit::{self, Actor, Entry};
use crate::config::AccountSeed;
use crate::db::{Backend, Db, StoreError, Tx, now_ms};

/// Who makes a change, and from where (for the audit record).
#[derive(Debug, Clone)]
pub struct Who {
    pub actor: Actor,
    pub source_ip: Option<String>,
}

impl Who {
    pub fn user(user: &crate::web::CurrentUser) -> Who {
        Who {
            actor: Actor::of(user),
            source_ip: user.source_ip.clone(),
        }
    }

    pub fn system(name: &str) -> Who {
        Who {
            actor: Actor::system(name),
            source_ip: None,
        }
    }
}

/// Why the seed disables an account the config file no longer names.
pub const REMOVED_FROM_CONFIG: &str = "removed from the configuration file";

/// Registers or updates the accounts the config file names (the file wins for the fields it
/// sets), and disables, without deleting, those it named before and names no more; an audit
/// record for each change. A seed that does not check out stops the start with a message
/// naming it, before anything is written.
pub async fn apply_seeds(db: &Db, seeds: &[AccountSeed]) -> anyhow::Result<()> {
    let mut planned = Vec::new();
    for seed in seeds {
        let stored = get(db, &seed.id).await?;
        let spec = AccountSpec::from_seed(seed, stored.as_ref().map(|a| a.spec()).as_ref())
            .map_err(anyhow::Error::msg)?;
        planned.push(spec);
    }
    let actor = Who::system("config");
    for spec in &planned {
        let mut tx = db.begin().await?;
        seed_one(&mut tx, db.backend(), spec, &actor).await?;
        tx.commit().await?;
    }
    let named: Vec<&str> = planned.iter().map(|s| s.id.as_str()).collect();
    for account in list(db).await? {
        let gone = account.managed_by == ManagedBy::Config
            && account.status == Status::Active
            && !named.contains(&account.id.as_str());
        if gone {
            let mut tx = db.begin().await?;
            set_status(
                &mut tx,
                db.backend(),
                &account.id,
                Status::Disabled,
                Some(REMOVED_FROM_CONFIG),
                &actor,
            )
            .await?;
            tx.commit().await?;
            tracing::warn!(account.id = %account.id, "An account the configuration file no longer names was disabled.");
        }
    }
    Ok(())
}

/// One seeded account: registered, updated to the file's values, and enabled again if only its
/// absence from the file had disabled it.
async fn seed_one(
    tx: &mut Tx,
    backend: Backend,
    spec: &AccountSpec,
    who: &Who,
) -> Result<(), StoreError> {
    let Some(before) = lock(tx, backend, spec.id.as_str()).await? else {
        insert(tx, spec, ManagedBy::Config, who).await?;
        return Ok(());
    };
    if before.spec() != *spec || before.managed_by != ManagedBy::Config {
        write_spec(tx, spec).await?;
        sqlx::query("update accounts set managed_by = 'config' where id = $1")
            .bind(spec.id.to_string())
            .execute(&mut **tx)
            .await?;
        let mut after = spec.snapshot();
        after["managed_by"] = "config".into();
        let mut was = before.spec().snapshot();
        was["managed_by"] = before.managed_by.as_str().into();
        append(tx, who, "account.updated", &spec.id, was, after).await?;
    }
    if before.status == Status::Disabled
        && before.status_reason.as_deref() == Some(REMOVED_FROM_CONFIG)
    {
        set_status(tx, backend, &spec.id, Status::Active, None, who).await?;
    }
    Ok(())
}

/// Registers a new account with a fresh ExternalId (the caller has checked the id is free).
pub async fn insert(
    tx: &mut Tx,
    spec: &AccountSpec,
    managed_by: ManagedBy,
    who: &Who,
) -> Result<(), StoreError> {
    let now = now_ms();
    let external_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "insert into accounts (id, name, env_class, deploy_role_arn, external_id, regions, \
         created_at, updated_at, settings_json, purpose, status, managed_by) \
         values ($1, $2, $3, $4, $5, $6, $7, $7, '{}', $8, 'active', $9)",
    )
    .bind(spec.id.to_string())
    .bind(spec.name.clone())
    .bind(spec.env_class().as_str())
    .bind(spec.deploy_role_arn.to_string())
    .bind(external_id.clone())
    .bind(spec.regions_csv())
    .bind(now)
    .bind(spec.purpose.as_str())
    .bind(managed_by.as_str())
    .execute(&mut **tx)
    .await?;
    write_spec(tx, spec).await?;
    let mut after = spec.snapshot();
    after["external_id"] = external_id.into();
    after["status"] = "active".into();
    after["managed_by"] = managed_by.as_str().into();
    append(
        tx,
        who,
        "account.registered",
        &spec.id,
        serde_json::Value::Null,
        after,
    )
    .await
}

/// Writes every field of `spec` (and the account's teams) over the stored row.
async fn write_spec(tx: &mut Tx, spec: &AccountSpec) -> Result<(), StoreError> {
    sqlx::query(
        "update accounts set name = $2, env_class = $3, purpose = $4, deploy_role_arn = $5, \
         cfn_execution_role_arn = $6, regions = $7, settings_json = $8, updated_at = $9 \
         where id = $1",
    )
    .bind(spec.id.to_string())
    .bind(spec.name.clone())
    .bind(spec.env_class().as_str())
    .bind(spec.purpose.as_str())
    .bind(spec.deploy_role_arn.to_string())
    .bind(spec.cfn_execution_role_arn.as_ref().map(|r| r.to_string()))
    .bind(spec.regions_csv())
    .bind(StoreError::json("account settings", &spec.settings)?)
    .bind(now_ms())
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
    Ok(())
}

/// One audit record of an account change, with what it was and what it became.
async fn append(
    tx: &mut Tx,
    who: &Who,
    action: &'static str,
    id: &AwsAccountId,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), StoreError> {
    let entry = Entry::new(&who.actor, action, "account", id.to_string())
        .detail(serde_json::json!({ "before": before, "after": after }))
        .source_ip(who.source_ip.clone());
    audit::store::append(tx, entry).await?;
    Ok(())
}

/// An admin's edit: the account becomes `spec` (its ExternalId, status and checks stay).
/// Returns `false` when nothing changed (and nothing is recorded).
pub async fn update(
    tx: &mut Tx,
    backend: Backend,
    spec: &AccountSpec,
    who: &Who,
) -> Result<bool, StoreError> {
    let before = lock(tx, backend, spec.id.as_str())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("account {} is not registered", spec.id)))?;
    if before.spec() == *spec {
        return Ok(false);
    }
    write_spec(tx, spec).await?;
    append(
        tx,
        who,
        "account.updated",
        &spec.id,
        before.spec().snapshot(),
        spec.snapshot(),
    )
    .await?;
    Ok(true)
}

/// Disables (with the reason) or enables an account. Returns `false` when it already was.
pub async fn set_status(
    tx: &mut Tx,
    backend: Backend,
    id: &AwsAccountId,
    status: Status,
    reason: Option<&str>,
    who: &Who,
) -> Result<bool, StoreError> {
    let before = lock(tx, backend, id.as_str())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("account {id} is not registered")))?;
    if before.status == status {
        return Ok(false);
    }
    sqlx::query(
        "update accounts set status = $2, status_reason = $3, updated_at = $4 where id = $1",
    )
    .bind(id.to_string())
    .bind(status.as_str())
    .bind(reason.map(str::to_string))
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    let action = match status {
        Status::Active => "account.enabled",
        Status::Disabled => "account.disabled",
    };
    append(
        tx,
        who,
        action,
        id,
        serde_json::json!({ "status": before.status, "reason": before.status_reason }),
        serde_json::json!({ "status": status, "reason": reason }),
    )
    .await?;
    Ok(true)
}

/// Gives the account a new ExternalId; the old one stays shown until a check succeeds with the
/// new one. The last check no longer says anything about the new one, so it is cleared.
pub async fn rotate_external_id(
    tx: &mut Tx,
    backend: Backend,
    id: &AwsAccountId,
    who: &Who,
) -> Result<String, StoreError> {
    let before = lock(tx, backend, id.as_str())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("account {id} is not registered")))?;
    let fresh = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "update accounts set external_id = $2, previous_external_id = $3, last_check_at = null, \
         last_check_ok = null, last_check_reason = null, updated_at = $4 where id = $1",
    )
    .bind(id.to_string())
    .bind(fresh.clone())
    .bind(before.external_id.clone())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    append(
        tx,
        who,
        "account.external_id_rotated",
        id,
        serde_json::json!({ "external_id": before.external_id,
                            "previous_external_id": before.previous_external_id }),
        serde_json::json!({ "external_id": fresh, "previous_external_id": before.external_id }),
    )
    .await?;
    Ok(fresh)
}

/// Records an access check; a successful one retires the previous ExternalId.
pub async fn record_check(
    tx: &mut Tx,
    backend: Backend,
    id: &AwsAccountId,
    check: &LastCheck,
    who: &Who,
) -> Result<(), StoreError> {
    let before = lock(tx, backend, id.as_str())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("account {id} is not registered")))?;
    let previous = if check.ok {
        None
    } else {
        before.previous_external_id.clone()
    };
    sqlx::query(
        "update accounts set last_check_at = $2, last_check_ok = $3, last_check_reason = $4, \
         previous_external_id = $5 where id = $1",
    )
    .bind(id.to_string())
    .bind(check.at)
    .bind(i64::from(check.ok))
    .bind(check.reason.clone())
    .bind(previous.clone())
    .execute(&mut **tx)
    .await?;
    let entry = Entry::new(
        &who.actor,
        "account.access_checked",
        "account",
        id.to_string(),
    )
    .outcome(if check.ok { "success" } else { "failure" })
    .detail(serde_json::json!({
        "before": { "last_check": before.last_check,
                    "previous_external_id": before.previous_external_id },
        "after": { "last_check": check, "previous_external_id": previous },
        "deploy_role_arn": before.deploy_role_arn, "external_id": before.external_id,
    }))
    .source_ip(who.source_ip.clone());
    audit::store::append(tx, entry).await?;
    Ok(())
}

/// The account, locked for the rest of the transaction (PostgreSQL; SQLite's write transaction
/// is already exclusive).
pub async fn lock(tx: &mut Tx, backend: Backend, id: &str) -> Result<Option<Account>, StoreError> {
    let lock = match backend {
        Backend::Postgres => " for update",
        Backend::Sqlite => "",
    };
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} where id = $1{lock}")))
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
    from_row(&row, teams).map(Some)
}

fn from_row(row: &sqlx::any::AnyRow, teams: Vec<String>) -> Result<Account, StoreError> {
    let regions: String = row.try_get(5)?;
    let corrupt = |what: &str, e: String| StoreError::corrupt(format_args!("account {what}: {e}"));
    let env_class = row
        .try_get::<String, _>(2)
        .map(|c| EnvClass::named(&c))?
        .map_err(|e| corrupt("class", e))?;
    // Rows from before purposes: a workload class is its own; a core account reads as shared
    // services until the config file or an admin says otherwise.
    let purpose = match row.try_get::<Option<String>, _>(8)? {
        Some(p) => Purpose::named(&p).map_err(|e| corrupt("purpose", e))?,
        None => Purpose::of_workload(env_class).unwrap_or(Purpose::SharedServices),
    };
    let status = match row.try_get::<String, _>(9)?.as_str() {
        "active" => Status::Active,
        "disabled" => Status::Disabled,
        other => return Err(corrupt("status", other.to_string())),
    };
    let managed_by = match row.try_get::<String, _>(11)?.as_str() {
        "admin" => ManagedBy::Admin,
        _ => ManagedBy::Config,
    };
    let last_check = match (
        row.try_get::<Option<i64>, _>(12)?,
        row.try_get::<Option<i64>, _>(13)?,
    ) {
        (Some(at), Some(ok)) => Some(LastCheck {
            at,
            ok: ok != 0,
            reason: row.try_get::<Option<String>, _>(14)?.unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Account {
        id: AwsAccountId::try_from(row.try_get::<String, _>(0)?).map_err(|e| corrupt("id", e))?,
        name: row.try_get(1)?,
        purpose,
        env_class,
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
        status,
        status_reason: row.try_get(10)?,
        managed_by,
        last_check,
        previous_external_id: row.try_get(15)?,
    })
}

const SELECT: &str = "select id, name, env_class, deploy_role_arn, external_id, regions, \
    cfn_execution_role_arn, settings_json, purpose, status, status_reason, managed_by, \
    last_check_at, last_check_ok, last_check_reason, previous_external_id from accounts";

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
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SELECT} where env_class <> 'core' and id in \
         (select account_id from account_teams where team = $1) order by env_class, name, id"
    )))
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
