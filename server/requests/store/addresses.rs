//! The estate's address plan: the VPC block of every network requested or deployed, in any
//! account of any team, because the Transit Gateway joins them all. A new block may overlap none
//! of them; reserving one is serialised (SQLite's write lock, PostgreSQL's advisory lock), so
//! two concurrent requests never get the same block.

use sqlx::Row;

use crate::catalog::cidr::Cidr;
use crate::db::{Db, StoreError, Tx, now_ms};

/// A fixed key for the PostgreSQL advisory lock that serialises reservations across replicas.
const PLAN_LOCK_KEY: i64 = 0x5354_4b47_4950_414d; // "STKGIPAM"

/// A block in use, and whose it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub cidr: String,
    pub request_id: String,
    pub number: i64,
    pub team: String,
    pub env_name: String,
    pub account_name: String,
}

impl Taken {
    /// What the requester is told.
    pub fn refusal(&self, wanted: &Cidr) -> String {
        format!(
            "{wanted} overlaps {} of environment '{}' (team {}, account {}, request #{}): \
             choose a block that overlaps no other network of the estate",
            self.cidr, self.env_name, self.team, self.account_name, self.number
        )
    }
}

/// Which stack a block is for: requests for the same stack (an update of a network) share its
/// block and never clash with each other.
#[derive(Debug, Clone, Copy)]
pub struct StackKey<'a> {
    pub account_id: &'a str,
    pub region: &'a str,
    pub stack_name: &'a str,
}

/// Blocks of requests that are not rejected or cancelled, other than the stack's own: a failed
/// network keeps its block until it is withdrawn, since its stack may exist in part.
const IN_USE: &str = "select b.cidr, b.request_id, r.number, r.team, r.env_name, a.name \
    from address_blocks b join service_requests r on r.id = b.request_id \
    join accounts a on a.id = r.account_id \
    where b.released_at is null and r.status not in ('rejected', 'cancelled') \
    and b.first_ip <= $1 and b.last_ip >= $2 \
    and not (r.account_id = $3 and r.region = $4 and r.stack_name = $5) \
    order by b.first_ip limit 500";

/// The first live request of a stack and its block: an update keeps both (the stack's
/// `stackgate:request` tag names the request that created it).
pub async fn stack_origin(
    db: &Db,
    stack: StackKey<'_>,
) -> Result<Option<(String, Option<String>)>, StoreError> {
    let row = sqlx::query(
        "select r.id, b.cidr from service_requests r \
         left join address_blocks b on b.request_id = r.id \
         where r.account_id = $1 and r.region = $2 and r.stack_name = $3 \
         and r.status not in ('rejected', 'cancelled') order by r.created_at, r.id limit 1",
    )
    .bind(stack.account_id.to_string())
    .bind(stack.region.to_string())
    .bind(stack.stack_name.to_string())
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<Taken, StoreError> {
    Ok(Taken {
        cidr: row.try_get(0)?,
        request_id: row.try_get(1)?,
        number: row.try_get(2)?,
        team: row.try_get(3)?,
        env_name: row.try_get(4)?,
        account_name: row.try_get(5)?,
    })
}

/// The blocks in use by other stacks that share an address with `range` (at most 500: a pool's
/// worth).
pub async fn in_use(db: &Db, range: &Cidr, stack: StackKey<'_>) -> Result<Vec<Taken>, StoreError> {
    let (first, last) = range.bounds();
    let rows = sqlx::query(IN_USE)
        .bind(last)
        .bind(first)
        .bind(stack.account_id.to_string())
        .bind(stack.region.to_string())
        .bind(stack.stack_name.to_string())
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(from_row).collect()
}

/// Reserves `cidr` for the request `request_id` in the caller's transaction, unless a block in
/// use overlaps it: then nothing is written and that block is returned.
pub async fn reserve(
    tx: &mut Tx,
    request_id: &str,
    cidr: &Cidr,
    stack: StackKey<'_>,
) -> Result<Option<Taken>, StoreError> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PLAN_LOCK_KEY)
            .execute(&mut **tx)
            .await?;
    }
    let (first, last) = cidr.bounds();
    let clash = sqlx::query(IN_USE)
        .bind(last)
        .bind(first)
        .bind(stack.account_id.to_string())
        .bind(stack.region.to_string())
        .bind(stack.stack_name.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = clash {
        return Ok(Some(from_row(&row)?));
    }
    sqlx::query(
        "insert into address_blocks (request_id, cidr, first_ip, last_ip, created_at) \
         values ($1, $2, $3, $4, $5)",
    )
    .bind(request_id.to_string())
    .bind(cidr.to_string())
    .bind(first)
    .bind(last)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(None)
}
