//! What the portal last published, read back from the audit log: each successful publish's record
//! holds the portfolio as it was after the publish, so the page needs no table of its own.

use sqlx::Row;

use super::AUDIT_ACTION;
use super::publish::Publication;
use crate::db::Db;

/// The last successful publish: when (ms since the epoch), by whom, and what the portfolio held.
#[derive(Debug, Clone)]
pub struct LastPublish {
    pub at: i64,
    pub actor: String,
    pub publication: Publication,
}

/// The newest successful `service_catalog.published` record, if any.
pub async fn last(db: &Db) -> anyhow::Result<Option<LastPublish>> {
    let row = sqlx::query(
        "select at, actor_name, detail_json from audit_log \
         where action = $1 and outcome = 'success' order by seq desc limit 1",
    )
    .bind(AUDIT_ACTION.to_string())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let detail: String = row.try_get(2)?;
    Ok(Some(LastPublish {
        at: row.try_get(0)?,
        actor: row.try_get(1)?,
        publication: serde_json::from_str(&detail)?,
    }))
}
