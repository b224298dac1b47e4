//! The audit page's view.

use askama::Template;

use super::store::Verified;
use crate::web::{Layout, When};

pub struct Row {
    pub seq: i64,
    pub when: When,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub detail: String,
    pub hash_short: String,
}

/// The chain's status as the page shows it.
pub struct ChainStatus {
    pub verified: Verified,
    pub when: When,
}

#[derive(Template)]
#[template(path = "audit/index.html")]
pub struct AuditPage {
    pub layout: Layout,
    pub rows: Vec<Row>,
    pub chain: Option<ChainStatus>,
    pub filter: String,
    pub next: Option<i64>,
    /// Team notifications given up after their retries.
    pub undelivered: i64,
}
