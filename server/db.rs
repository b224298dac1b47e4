//! The database: SQLite as the embedded default, PostgreSQL when several replicas share one,
//! picked from the URL scheme. Each backend has its own migrations; queries are written once in
//! the SQL both understand (`$1` placeholders, times as epoch milliseconds).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor, Row};

/// Why a store function failed; not an HTTP error (the edge maps it once, in `error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or could not be reached.
    #[error("database")]
    Db(#[from] sqlx::Error),
    /// Someone else changed the row first (a compare-and-set lost), or a uniqueness rule with a
    /// meaning for the user: the message says what to do.
    #[error("{0}")]
    Conflict(String),
    /// A fenced write found another epoch: the lease on the job was lost to another worker, which
    /// now owns it. The caller stops working on the job.
    #[error("the lease on {0} was lost to another worker")]
    LeaseLost(String),
    /// A value could not be encoded for storing.
    #[error("could not encode {what} for storing")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not read back (unknown status, unreadable JSON).
    #[error("stored {what} is unreadable")]
    Corrupt {
        what: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// Encodes a value as JSON text for a column.
    pub fn json<T: serde::Serialize + ?Sized>(
        what: &'static str,
        value: &T,
    ) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|source| StoreError::Encode { what, source })
    }

    /// For a stored value that does not read back, with no further cause.
    pub fn corrupt(what: impl fmt::Display) -> StoreError {
        StoreError::Corrupt {
            what: what.to_string(),
            source: None,
        }
    }

    /// For a stored value that does not read back, keeping the parser's error as the cause.
    pub fn unreadable(
        what: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> StoreError {
        StoreError::Corrupt {
            what: what.to_string(),
            source: Some(Box::new(source)),
        }
    }
}

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A cheap, cloneable handle on the pool.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Counts this process's committed writes; see [`Db::read_row`].
    writes: Arc<AtomicU64>,
    /// Rows of list reads, kept while nothing has been written (SQLite only).
    reads: Option<moka::sync::Cache<String, CachedRow>>,
}

/// A write transaction. Used as the connection it runs on (`&mut *tx`); committing it counts as
/// a write for the read cache.
pub struct Tx {
    inner: sqlx::Transaction<'static, sqlx::Any>,
    writes: Arc<AtomicU64>,
}

impl Tx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        let committed = self.inner.commit().await;
        // Counted even when the commit failed: a read cached before it is merely read again.
        self.writes.fetch_add(1, Ordering::SeqCst);
        committed
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.inner.rollback().await
    }
}

impl Deref for Tx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &sqlx::AnyConnection {
        &self.inner
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }
}

/// One cell of a row read through [`Db::read_row`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
}

/// The kind of each column [`Db::read_row`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellKind {
    Text,
    Int,
}

#[derive(Debug, Clone)]
struct CachedRow {
    /// [`Db::writes`] when the read started.
    writes: u64,
    cells: Arc<[Cell]>,
}

/// How long a cached read may serve when only another process could have written (the CLI, or
/// SQL typed by hand): writes of this process invalidate it at once.
const READ_CACHE_TTL: Duration = Duration::from_secs(1);
/// Bytes of cached rows (list pages as JSON text), at most.
const READ_CACHE_BYTES: u64 = 32 * 1024 * 1024;

fn read_cache() -> moka::sync::Cache<String, CachedRow> {
    moka::sync::Cache::builder()
        .max_capacity(READ_CACHE_BYTES)
        .weigher(|key: &String, row: &CachedRow| {
            let cells: usize = row
                .cells
                .iter()
                .map(|c| match c {
                    Cell::Text(t) => t.len(),
                    Cell::Int(_) => 8,
                })
                .sum();
            u32::try_from(key.len() + cells).unwrap_or(u32::MAX)
        })
        .time_to_live(READ_CACHE_TTL)
        .build()
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// SQLite settings the portal relies on, set on every connection and checked at start (G1):
/// WAL, `synchronous=FULL` so an acknowledged write survives a power cut, foreign keys, and a
/// busy timeout so writers queue instead of failing. Recursive triggers, because without them
/// `INSERT OR REPLACE` deletes the row it replaces without firing the audit log's delete trigger.
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
    PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; PRAGMA recursive_triggers = ON;";

impl Db {
    /// Connects, creating the SQLite file (and its folder) if needed.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)");
        };
        let url = if backend == Backend::Sqlite {
            prepare_sqlite_url(url)?
        } else {
            url.to_string()
        };
        let options = AnyConnectOptions::from_str(&url).context("parsing the database URL")?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("connecting to the database")?;
        Ok(Db {
            pool,
            backend,
            writes: Arc::new(AtomicU64::new(0)),
            // One replica holds a SQLite file (the lock file), so this process sees every write
            // the portal makes. PostgreSQL is shared by replicas whose writes it would not see.
            reads: (backend == Backend::Sqlite).then(read_cache),
        })
    }

    /// PostgreSQL with a separate owner: runs the migrations as the owner (`owner_url`), then
    /// grants this pool's role only what the portal needs. It may read and write its working
    /// tables, but on the audit log and its verifications only INSERT and SELECT: it cannot
    /// update, delete or truncate them, and not being their owner it cannot drop or disable the
    /// triggers that guard them either.
    pub async fn migrate_as_owner(&self, owner_url: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backend == Backend::Postgres,
            "a separate schema owner applies to PostgreSQL only"
        );
        let owner = Db::connect(owner_url)
            .await
            .context("connecting as the schema owner (STACKGATE_DATABASE_OWNER_URL)")?;
        owner.migrate().await?;
        let app: String = sqlx::query("select current_user::text")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let owner_name: String = sqlx::query("select current_user::text")
            .fetch_one(&owner.pool)
            .await?
            .try_get(0)?;
        anyhow::ensure!(
            app != owner_name,
            "STACKGATE_DATABASE_URL and STACKGATE_DATABASE_OWNER_URL use the same role ({app}): \
             the portal's role must not own the schema"
        );
        let role = format!("\"{}\"", app.replace('"', "\"\""));
        for grant in [
            format!("grant usage on schema public to {role}"),
            format!(
                "grant select, insert, update, delete on all tables in schema public to {role}"
            ),
            format!("grant usage, select on all sequences in schema public to {role}"),
            format!(
                "revoke update, delete, truncate on audit_log, audit_verifications, audit_checkpoints from {role}"
            ),
            format!("revoke insert, update, delete, truncate on _sqlx_migrations from {role}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(grant.as_str()))
                .execute(&owner.pool)
                .await
                .with_context(|| format!("granting the portal's role: {grant}"))?;
        }
        owner.close().await;
        Ok(())
    }

    /// Applies the backend's migrations.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .context("running migrations")?;
        Ok(())
    }

    /// Reads back the durability settings and refuses to run on a mismatch (G1).
    pub async fn self_check(&self) -> anyhow::Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = self.pool.acquire().await?;
                for (pragma, want) in [
                    ("journal_mode", "wal"),
                    ("synchronous", "2"),
                    ("foreign_keys", "1"),
                ] {
                    let sql = match pragma {
                        "journal_mode" => "PRAGMA journal_mode",
                        "synchronous" => "PRAGMA synchronous",
                        _ => "PRAGMA foreign_keys",
                    };
                    let row = sqlx::query(sql).fetch_one(&mut *conn).await?;
                    let got: String = match row.try_get::<String, _>(0) {
                        Ok(s) => s,
                        Err(_) => row.try_get::<i64, _>(0)?.to_string(),
                    };
                    anyhow::ensure!(
                        got.eq_ignore_ascii_case(want),
                        "SQLite PRAGMA {pragma} is {got}, expected {want}"
                    );
                }
            }
            Backend::Postgres => {
                let row = sqlx::query("SHOW synchronous_commit")
                    .fetch_one(&self.pool)
                    .await?;
                let got: String = row.try_get(0)?;
                anyhow::ensure!(
                    got == "on",
                    "PostgreSQL synchronous_commit is {got}, expected on"
                );
            }
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`),
    /// so a read-then-write transaction never fails half-way with SQLITE_BUSY.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            writes: self.writes.clone(),
        })
    }

    /// Records a write made outside [`Tx`] (a single statement on the pool).
    pub fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }

    /// Runs a statement that returns one row, of columns of the given kinds. On SQLite the row
    /// is kept and served again while this process has committed no write since the read began
    /// (and for at most a second, for writes by other processes): the pages people reload and
    /// poll most then cost no statement while nothing changes. Every write invalidates every
    /// cached row, so a page never shows less than what its reader's own last action wrote.
    pub async fn read_row(&self, sql: &Sql, kinds: &[CellKind]) -> Result<Arc<[Cell]>, StoreError> {
        let Some(cache) = &self.reads else {
            return self.fetch_row(sql, kinds).await;
        };
        let key = sql.cache_key();
        let writes = self.writes.load(Ordering::SeqCst);
        // The cache's time-to-live bounds the age; the write count, what happened since.
        if let Some(hit) = cache.get(&key)
            && hit.writes == writes
        {
            return Ok(hit.cells);
        }
        let cells = self.fetch_row(sql, kinds).await?;
        let row = CachedRow {
            writes,
            cells: cells.clone(),
        };
        cache.insert(key, row);
        Ok(cells)
    }

    async fn fetch_row(&self, sql: &Sql, kinds: &[CellKind]) -> Result<Arc<[Cell]>, StoreError> {
        let row = sql.query().fetch_one(&self.pool).await?;
        let mut cells = Vec::with_capacity(kinds.len());
        for (i, kind) in kinds.iter().enumerate() {
            cells.push(match kind {
                CellKind::Text => Cell::Text(row.try_get(i)?),
                CellKind::Int => Cell::Int(row.try_get(i)?),
            });
        }
        Ok(cells.into())
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The text around a statement that turns its rows into one JSON array (text) with one
    /// array per row, of `columns` in that order, sorted by `order`: the caller writes the inner
    /// statement between the two. A whole list then comes back as one value instead of a row at
    /// a time (serde reads a struct from an array of its fields in order).
    pub fn json_rows(&self, columns: &[&str], order: &str) -> (String, String) {
        let values = columns.join(", ");
        let open = match self.backend {
            Backend::Sqlite => {
                format!("select json_group_array(json_array({values}) order by {order}) from (")
            }
            Backend::Postgres => format!(
                "select coalesce(json_agg(json_build_array({values}) order by {order}), \
                 '[]'::json)::text from ("
            ),
        };
        (open, ") rows_".to_string())
    }

    /// A cheap query proving the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the folder a SQLite database file lives in, if it is missing, and says so.
fn ensure_sqlite_folder(path: &str) -> anyhow::Result<()> {
    let Some(dir) = std::path::Path::new(path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    else {
        return Ok(());
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
        tracing::info!(db.folder = %dir.display(), "Created the database folder.");
    }
    Ok(())
}

/// Makes sure the SQLite file's folder exists and the URL asks for create-if-missing.
fn prepare_sqlite_url(url: &str) -> anyhow::Result<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    ensure_sqlite_folder(sqlite_path(url)?)?;
    Ok(if rest.contains("mode=") {
        url.to_string()
    } else if rest.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// The file path of a `sqlite:` URL.
fn sqlite_path(url: &str) -> anyhow::Result<&str> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        anyhow::bail!(
            "STACKGATE_DATABASE_URL: give SQLite a file path, e.g. sqlite://data/stackgate.db"
        );
    }
    Ok(path)
}

/// SQLite means one replica: a serving portal holds an exclusive lock on `<database>.lock`, and
/// a second one refuses to start. `None` for PostgreSQL, where replicas share the database.
pub fn single_replica_lock(url: &str) -> anyhow::Result<Option<std::sync::Arc<std::fs::File>>> {
    if !url.starts_with("sqlite:") {
        return Ok(None);
    }
    let path = sqlite_path(url)?;
    ensure_sqlite_folder(path)?;
    let lock_path = format!("{path}.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("opening {lock_path}"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(std::sync::Arc::new(file))),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another stackgate is already serving this SQLite database ({lock_path} is locked): \
             SQLite means one replica; run several replicas on PostgreSQL"
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("locking {lock_path}")))
        }
    }
}

/// A value bound to a placeholder of a [`Sql`] statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Text(String),
    Int(i64),
}

/// A statement built from pieces, with its arguments. Each [`Sql::arg`] writes the next `$n`
/// placeholder, so placeholders appear in the text in the order they are bound: SQLite numbers
/// `$n` parameters by first appearance, PostgreSQL by `n`, and this keeps both in step.
#[derive(Debug, Default, Clone)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &str) -> Sql {
        Sql {
            text: text.to_string(),
            args: Vec::new(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn arg(&mut self, arg: Arg) -> &mut Sql {
        self.args.push(arg);
        self.text.push_str(&format!("${}", self.args.len()));
        self
    }

    pub fn text(&mut self, v: &str) -> &mut Sql {
        self.arg(Arg::Text(v.to_string()))
    }

    pub fn int(&mut self, v: i64) -> &mut Sql {
        self.arg(Arg::Int(v))
    }

    /// Appends `(p1, p2, …)` for a non-empty list of text values.
    pub fn text_list(&mut self, values: &[&str]) -> &mut Sql {
        self.push("(");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(v);
        }
        self.push(")")
    }

    pub fn sql(&self) -> &str {
        &self.text
    }

    /// The statement and its arguments as one string: equal keys, equal statements.
    fn cache_key(&self) -> String {
        let mut key = self.text.clone();
        for a in &self.args {
            // Lengths first, so no argument's text can pass for a separator.
            match a {
                Arg::Text(v) => key.push_str(&format!("\u{0}t{}:{v}", v.len())),
                Arg::Int(v) => key.push_str(&format!("\u{0}i{v}")),
            }
        }
        key
    }

    /// Takes over the arguments of `inner`, whose text this statement embeds unchanged.
    pub fn take_args(&mut self, inner: Sql) -> &mut Sql {
        self.args = inner.args;
        self
    }

    /// The statement with its arguments bound, ready to run.
    pub fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.text.as_str()));
        for a in &self.args {
            q = match a {
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Int(v) => q.bind(*v),
            };
        }
        q
    }
}

/// The database server's clock, in milliseconds since the Unix epoch. Leases are set and compared
/// on this one clock, so replicas whose own clocks drift cannot take each other's jobs early.
pub async fn db_now(tx: &mut Tx) -> Result<i64, sqlx::Error> {
    let sql = if tx.backend_name() == "PostgreSQL" {
        "select cast(floor(extract(epoch from clock_timestamp()) * 1000) as bigint)"
    } else {
        "select cast((julianday('now') - 2440587.5) * 86400000.0 as integer)"
    };
    sqlx::query(sql).fetch_one(&mut **tx).await?.try_get(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_of_a_database_in_a_missing_folder_creates_the_folder() -> anyhow::Result<()> {
        let root = std::env::temp_dir().join(format!("sg-db-{}", uuid::Uuid::new_v4().simple()));
        let url = format!("sqlite://{}/data/portal.db", root.display());
        let lock = single_replica_lock(&url)?;
        assert!(lock.is_some());
        assert!(root.join("data").is_dir());
        assert!(root.join("data/portal.db.lock").is_file());
        let second = single_replica_lock(&url).err().map(|e| e.to_string());
        assert!(second.is_some_and(|m| m.contains("SQLite means one replica")));
        drop(lock);
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }

    async fn count(db: &Db) -> Result<i64, StoreError> {
        let row = db
            .read_row(&Sql::new("select count(*) from t"), &[CellKind::Int])
            .await?;
        match row.first() {
            Some(Cell::Int(n)) => Ok(*n),
            other => panic!("unexpected cell {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cached_read_lasts_until_this_process_commits_a_write() -> anyhow::Result<()> {
        let root = std::env::temp_dir().join(format!("sg-db-{}", uuid::Uuid::new_v4().simple()));
        let db = Db::connect(&format!("sqlite://{}/t.db", root.display())).await?;
        sqlx::query("create table t (n integer)")
            .execute(db.pool())
            .await?;
        assert_eq!(count(&db).await?, 0);
        // A write the cache is not told of (another process's) is not seen at once...
        sqlx::query("insert into t values (1)")
            .execute(db.pool())
            .await?;
        assert_eq!(
            count(&db).await?,
            0,
            "the read was not served from the cache"
        );
        // ...but within the TTL it is, and every commit of this process invalidates at once.
        tokio::time::sleep(READ_CACHE_TTL + Duration::from_millis(50)).await;
        assert_eq!(count(&db).await?, 1);
        let mut tx = db.begin().await?;
        sqlx::query("insert into t values (2)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        assert_eq!(count(&db).await?, 2);
        // A rolled-back transaction changes nothing, and statements differing only in their
        // arguments are different entries.
        let mut tx = db.begin().await?;
        sqlx::query("insert into t values (3)")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        assert_eq!(count(&db).await?, 2);
        let mut a = Sql::new("select count(*) from t where n = ");
        a.int(1);
        let mut b = Sql::new("select count(*) from t where n = ");
        b.int(9);
        assert_ne!(a.cache_key(), b.cache_key());
        db.close().await;
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }
}
