//! Approval policy SQL: the seed at start, the current version, recent versions, and a new
//! version saved with its audit record (old and new rules) in one transaction.

use sqlx::Row;

use super::{ApprovalRules, Policy};
use crate::audit::{self, Actor, Entry};
use crate::config::Config;
use crate::db::{Db, StoreError, Tx, now_ms};

fn from_row(row: &sqlx::any::AnyRow) -> Result<Policy, StoreError> {
    let rules: String = row.try_get(1)?;
    Ok(Policy {
        version: row.try_get(0)?,
        rules: serde_json::from_str(&rules)
            .map_err(|e| StoreError::unreadable("approval policy rules", e))?,
        created_by_name: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

async fn insert(
    tx: &mut Tx,
    version: i64,
    rules: &ApprovalRules,
    actor: &Actor,
) -> Result<bool, StoreError> {
    let json = serde_json::to_string(rules)
        .map_err(|e| StoreError::unreadable("approval policy rules", e))?;
    let done = sqlx::query(
        "insert into approval_policies (version, rules_json, created_by, created_by_name, \
         created_at) values ($1, $2, $3, $4, $5) on conflict (version) do nothing",
    )
    .bind(version)
    .bind(json)
    .bind(actor.id.clone())
    .bind(actor.name.clone())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores the settings' rules as version 1 when there is no version yet (audited as such); a
/// later start changes nothing, whatever the settings say then.
pub async fn seed(db: &Db, config: &Config) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    let exists = sqlx::query("select 1 from approval_policies limit 1")
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    if exists {
        return Ok(tx.rollback().await?);
    }
    let rules = ApprovalRules::from_config(config);
    let actor = Actor::system("settings");
    if insert(&mut tx, 1, &rules, &actor).await? {
        audit::store::append(
            &mut tx,
            Entry::new(&actor, "policy.seeded", "approval_policy", "1")
                .detail(serde_json::json!({ "before": null, "after": rules, "version": 1 })),
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

const COLUMNS: &str = "version, rules_json, created_by_name, created_at";

/// The current rules (the newest version), if any version is stored.
pub async fn current(db: &Db) -> Result<Option<Policy>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from approval_policies order by version desc limit 1"
    )))
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// The newest `limit` versions, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Policy>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from approval_policies order by version desc limit $1"
    )))
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Saves `rules` as the next version, audited with the old and new rule sets; returns the new
/// version. `Conflict` when another admin saved a version at the same moment.
pub async fn save(
    db: &Db,
    actor: &Actor,
    source_ip: Option<String>,
    rules: &ApprovalRules,
) -> Result<Policy, StoreError> {
    let mut tx = db.begin().await?;
    let old = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from approval_policies order by version desc limit 1"
    )))
    .fetch_optional(&mut *tx)
    .await?
    .as_ref()
    .map(from_row)
    .transpose()?;
    let version = old.as_ref().map_or(1, |p| p.version + 1);
    if !insert(&mut tx, version, rules, actor).await? {
        return Err(StoreError::Conflict(
            "Another admin changed the approval rules at the same moment; reload and try again."
                .into(),
        ));
    }
    audit::store::append(
        &mut tx,
        Entry::new(
            actor,
            "policy.changed",
            "approval_policy",
            version.to_string(),
        )
        .detail(serde_json::json!({
            "before": old.as_ref().map(|p| &p.rules),
            "before_version": old.as_ref().map(|p| p.version),
            "after": rules,
            "version": version,
        }))
        .source_ip(source_ip),
    )
    .await?;
    tx.commit().await?;
    Ok(Policy {
        version,
        rules: rules.clone(),
        created_by_name: actor.name.clone(),
        created_at: now_ms(),
    })
}
