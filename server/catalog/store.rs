//! Blueprint version SQL: importing the bundled folders, storing drafts, moving versions through
//! their states (each change with its audit record, in one transaction), and reading them back.

use std::path::Path;

use anyhow::{Context, bail};
use sqlx::Row;

use super::Source;
use super::versions::{Semver, StoredVersion, Transition, VersionState};
use crate::audit::{self, Actor, Entry};
use crate::db::{Db, StoreError, Tx, now_ms};

const COLUMNS: &str = "slug, version, manifest, template, files_json, digest, state, source, \
                       created_by, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredVersion, StoreError> {
    let files: String = row.try_get(4)?;
    let files: Vec<(String, String)> = serde_json::from_str(&files)
        .map_err(|e| StoreError::unreadable("a blueprint version's files", e))?;
    let state: String = row.try_get(6)?;
    Ok(StoredVersion {
        slug: row.try_get(0)?,
        version: row.try_get(1)?,
        source: Source {
            manifest: row.try_get(2)?,
            template: row.try_get(3)?,
            files,
        },
        digest: row.try_get(5)?,
        state: state
            .parse()
            .map_err(|e| StoreError::unreadable("a blueprint version's state", e))?,
        origin: row.try_get(7)?,
        created_by: row.try_get(8)?,
        created_at: row.try_get(9)?,
    })
}

/// One stored version.
pub async fn get(db: &Db, slug: &str, version: &str) -> Result<Option<StoredVersion>, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from blueprint_versions where slug = $1 and version = $2"
    )))
    .bind(slug.to_string())
    .bind(version.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Every version of a blueprint, newest first.
pub async fn list(db: &Db, slug: &str) -> Result<Vec<StoredVersion>, StoreError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from blueprint_versions where slug = $1 \
         order by major desc, minor desc, patch desc"
    )))
    .bind(slug.to_string())
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(from_row).collect()
}

/// Every blueprint's versions as `(slug, version, state)`, by slug, newest version first.
pub async fn summary(db: &Db) -> Result<Vec<(String, String, String)>, StoreError> {
    let rows = sqlx::query(
        "select slug, version, state from blueprint_versions \
         order by slug, major desc, minor desc, patch desc",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// The newest published version of each blueprint as `(slug, version)`, by slug.
pub async fn latest_published(db: &Db) -> Result<Vec<(String, String)>, StoreError> {
    let rows = sqlx::query(
        "select slug, version from blueprint_versions where state = 'published' \
         order by slug, major desc, minor desc, patch desc",
    )
    .fetch_all(db.pool())
    .await?;
    let mut latest: Vec<(String, String)> = Vec::new();
    for row in &rows {
        let slug: String = row.try_get(0)?;
        if latest.last().is_none_or(|(s, _)| *s != slug) {
            latest.push((slug, row.try_get(1)?));
        }
    }
    Ok(latest)
}

/// The highest stored version of `slug` below `version` (what a new version is compared with).
pub async fn previous(
    db: &Db,
    slug: &str,
    version: Semver,
) -> Result<Option<StoredVersion>, StoreError> {
    let (major, minor, patch) = (
        i64::from(version.major),
        i64::from(version.minor),
        i64::from(version.patch),
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from blueprint_versions where slug = $1 and \
         (major < $2 or (major = $2 and minor < $3) or (major = $2 and minor = $3 and patch < $4)) \
         order by major desc, minor desc, patch desc limit 1"
    )))
    .bind(slug.to_string())
    .bind(major)
    .bind(minor)
    .bind(patch)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// How many stacks are on this version now: stacks whose newest deployed request names it.
pub async fn stacks_on(tx: &mut Tx, slug: &str, version: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "select count(*) from service_requests r where r.blueprint_slug = $1 \
         and r.blueprint_version = $2 and r.status = 'deployed' and not exists ( \
           select 1 from service_requests n where n.account_id = r.account_id \
           and n.region = r.region and n.stack_name = r.stack_name and n.status = 'deployed' \
           and n.created_at > r.created_at)",
    )
    .bind(slug.to_string())
    .bind(version.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get(0)?)
}

/// Stores a version (imported or uploaded) with its audit record. A version that exists already
/// is a conflict, and nothing is stored.
pub async fn insert(tx: &mut Tx, stored: &StoredVersion, actor: &Actor) -> Result<(), StoreError> {
    let v = Semver::parse(&stored.version).map_err(StoreError::corrupt)?;
    let inserted = sqlx::query(
        "insert into blueprint_versions (slug, version, major, minor, patch, manifest, template, \
         files_json, digest, state, source, created_by, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
         on conflict (slug, version) do nothing",
    )
    .bind(stored.slug.clone())
    .bind(stored.version.clone())
    .bind(i64::from(v.major))
    .bind(i64::from(v.minor))
    .bind(i64::from(v.patch))
    .bind(stored.source.manifest.clone())
    .bind(stored.source.template.clone())
    .bind(StoreError::json("blueprint files", &stored.source.files)?)
    .bind(stored.digest.clone())
    .bind(stored.state.to_string())
    .bind(stored.origin.clone())
    .bind(stored.created_by.clone())
    .bind(stored.created_at)
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!(
            "{} {} exists already: versions never change; give this one a new version number",
            stored.slug, stored.version
        )));
    }
    let action = if stored.origin == "bundled" {
        "blueprint.version_imported"
    } else {
        "blueprint.version_uploaded"
    };
    let entry = Entry::new(
        actor,
        action,
        "blueprint_version",
        format!("{}@{}", stored.slug, stored.version),
    )
    .detail(serde_json::json!({
        "slug": stored.slug, "version": stored.version, "digest": stored.digest,
        "before": null, "after": {"state": stored.state},
    }));
    audit::store::append(tx, entry).await?;
    Ok(())
}

/// Moves a version on; refused (with the reason) from a state the transition does not start
/// from, and a retirement while stacks are still on the version.
pub async fn transition(
    tx: &mut Tx,
    (slug, version): (&str, &str),
    transition: Transition,
    actor: &Actor,
) -> Result<VersionState, StoreError> {
    let row = sqlx::query("select state from blueprint_versions where slug = $1 and version = $2")
        .bind(slug.to_string())
        .bind(version.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Err(StoreError::Conflict(format!(
            "{slug} {version} does not exist"
        )));
    };
    let state: String = row.try_get(0)?;
    let before: VersionState = state
        .parse()
        .map_err(|e| StoreError::unreadable("a blueprint version's state", e))?;
    if !transition.from().contains(&before) {
        let from: Vec<String> = transition.from().iter().map(|s| s.to_string()).collect();
        return Err(StoreError::Conflict(format!(
            "{slug} {version} is {before}: only a {} version can become {}",
            from.join(" or "),
            transition.to()
        )));
    }
    if transition == Transition::Retire {
        let stacks = stacks_on(tx, slug, version).await?;
        if stacks > 0 {
            return Err(StoreError::Conflict(format!(
                "{slug} {version} still has {stacks} deployed stack(s) on it: update them to another version before retiring it"
            )));
        }
    }
    let updated = sqlx::query(
        "update blueprint_versions set state = $1, updated_at = $2 \
         where slug = $3 and version = $4 and state = $5",
    )
    .bind(transition.to().to_string())
    .bind(now_ms())
    .bind(slug.to_string())
    .bind(version.to_string())
    .bind(before.to_string())
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "{slug} {version} changed meanwhile: reload and try again"
        )));
    }
    let entry = Entry::new(
        actor,
        transition.action(),
        "blueprint_version",
        format!("{slug}@{version}"),
    )
    .detail(serde_json::json!({
        "slug": slug, "version": version,
        "before": {"state": before}, "after": {"state": transition.to()},
    }));
    audit::store::append(tx, entry).await?;
    Ok(before)
}

/// Imports each bundled folder under `dir` as a published version. A folder stored already with
/// the same digest changes nothing; a folder whose texts changed under a version number that is
/// stored stops the start, naming the folder.
pub async fn import_bundled(db: &Db, dir: &Path) -> anyhow::Result<()> {
    let catalog = super::Catalog::load(dir)?;
    for bp in catalog.list() {
        let folder = dir.join(&bp.slug);
        if let Some(stored) = get(db, &bp.slug, &bp.version).await? {
            if stored.digest == bp.digest {
                continue;
            }
            bail!(
                "{}: the folder changed, but version {} of {} is stored with other contents \
                 (digest {} there, {} here); stored versions never change: raise `version` in \
                 its blueprint.toml",
                folder.display(),
                bp.version,
                bp.slug,
                short(&stored.digest),
                short(&bp.digest)
            );
        }
        let source = Source::read(&folder)?;
        let stored = StoredVersion {
            slug: bp.slug.clone(),
            version: bp.version.clone(),
            source,
            digest: bp.digest.clone(),
            state: VersionState::Published,
            origin: "bundled".into(),
            created_by: None,
            created_at: now_ms(),
        };
        let mut tx = db.begin().await?;
        match insert(&mut tx, &stored, &Actor::system("catalog")).await {
            Ok(()) => tx.commit().await?,
            // Another replica imported it meanwhile: the next start compares digests.
            Err(StoreError::Conflict(_)) => tx.rollback().await?,
            Err(e) => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("importing {}", folder.display()));
            }
        }
    }
    Ok(())
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}
