//! Publishing the blueprint catalog to AWS Service Catalog: one portfolio in the portal's own
//! account and region, one product per blueprint, one provisioning artifact (version) per
//! blueprint version, the portfolio shared with the registry's active accounts.
//!
//! Service Catalog allows same-named portfolios, products and versions and raises no duplicate
//! error, so publishing twice without creating anything twice is the portal's job: [`plan`] compares
//! what exists (read by name first) with what should exist and returns only the calls still
//! needed; every create carries an IdempotencyToken derived from the portfolio, blueprint and
//! version ([`token`]), so a publish retried after a lost answer gets the first result back.
//! The AWS calls sit behind [`CatalogOps`] (`client.rs` implements it with the SDK); `publish.rs`
//! runs a plan through it.

pub mod client;
pub mod publish;
pub mod routes;
pub mod store;
pub mod views;

use std::collections::BTreeSet;
use std::future::Future;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Owner (and distributor) of every product the portal publishes.
pub const OWNER: &str = "stackgate";

/// The audit action of a publish.
pub const AUDIT_ACTION: &str = "service_catalog.published";

/// Whether a version may be launched from Service Catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionState {
    Published,
    /// Kept for updates of what was launched from it, not offered for new launches
    /// (Service Catalog's Guidance `DEPRECATED`).
    Deprecated,
}

/// A blueprint version as Service Catalog should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedVersion {
    pub version: String,
    /// The blueprint version's digest (manifest, template, files).
    pub digest: String,
    pub state: VersionState,
    /// The rendered CloudFormation template uploaded for it (JSON).
    pub template: String,
}

/// A blueprint as Service Catalog should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedProduct {
    pub slug: String,
    /// The product's name: the blueprint's name.
    pub name: String,
    pub summary: String,
    pub versions: Vec<WantedVersion>,
}

/// A provisioning artifact as Service Catalog lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Artifact {
    pub id: String,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub deprecated: bool,
}

/// A product of the portfolio with its artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Product {
    pub id: String,
    pub name: String,
    pub artifacts: Vec<Artifact>,
}

/// What the portfolio holds now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub products: Vec<Product>,
    pub shared_with: BTreeSet<String>,
}

impl Current {
    /// Products, versions and shares, for the audit record's `before` and `after`.
    pub fn counts(&self) -> serde_json::Value {
        let versions: usize = self.products.iter().map(|p| p.artifacts.len()).sum();
        serde_json::json!({
            "products": self.products.len(), "versions": versions,
            "shares": self.shared_with.len(),
        })
    }
}

/// One call still needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// CreateProduct with its first version, then AssociateProductWithPortfolio.
    CreateProduct { slug: String, version: String },
    /// CreateProvisioningArtifact on the blueprint's product.
    AddVersion { slug: String, version: String },
    /// UpdateProvisioningArtifact with Guidance `DEPRECATED`.
    Deprecate {
        product_id: String,
        artifact_id: String,
        label: String,
    },
    /// CreatePortfolioShare with the account.
    Share { account: String },
}

/// The calls still needed, and what already is as it should be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub unchanged: Vec<String>,
}

/// Which calls turn `current` into the catalog `wanted`, shared with `accounts`. Versions the
/// catalog no longer has (and every version of a product whose blueprint is gone) are deprecated,
/// not deleted: what was launched from them keeps its updates. Deprecated versions never
/// published are not published. Nothing is ever deleted or unshared.
pub fn plan(wanted: &[WantedProduct], current: &Current, accounts: &[String]) -> Plan {
    let mut out = Plan::default();
    for w in wanted {
        let existing = current.products.iter().find(|p| p.name == w.name);
        let published = w
            .versions
            .iter()
            .filter(|v| v.state == VersionState::Published);
        let Some(product) = existing else {
            let mut first = true;
            for v in published {
                out.steps.push(if first {
                    Step::CreateProduct {
                        slug: w.slug.clone(),
                        version: v.version.clone(),
                    }
                } else {
                    Step::AddVersion {
                        slug: w.slug.clone(),
                        version: v.version.clone(),
                    }
                });
                first = false;
            }
            continue;
        };
        for v in &w.versions {
            let label = format!("{} {}", w.name, v.version);
            match (
                product.artifacts.iter().find(|a| a.name == v.version),
                v.state,
            ) {
                (None, VersionState::Published) => out.steps.push(Step::AddVersion {
                    slug: w.slug.clone(),
                    version: v.version.clone(),
                }),
                (None, VersionState::Deprecated) => {}
                (Some(a), VersionState::Deprecated) if !a.deprecated => {
                    out.steps.push(deprecate(product, a))
                }
                (Some(_), _) => out.unchanged.push(format!("version {label}")),
            }
        }
        let known = |a: &&Artifact| w.versions.iter().any(|v| v.version == a.name);
        deprecate_rest(
            product,
            product.artifacts.iter().filter(|a| !known(a)),
            &mut out,
        );
    }
    for gone in current
        .products
        .iter()
        .filter(|p| !wanted.iter().any(|w| w.name == p.name))
    {
        deprecate_rest(gone, gone.artifacts.iter(), &mut out);
    }
    let accounts: BTreeSet<&String> = accounts.iter().collect();
    for account in accounts {
        if current.shared_with.contains(account) {
            out.unchanged.push(format!("share {account}"));
        } else {
            out.steps.push(Step::Share {
                account: account.clone(),
            });
        }
    }
    out
}

fn deprecate(product: &Product, a: &Artifact) -> Step {
    Step::Deprecate {
        product_id: product.id.clone(),
        artifact_id: a.id.clone(),
        label: format!("{} {}", product.name, a.name),
    }
}

fn deprecate_rest<'a>(
    product: &Product,
    artifacts: impl Iterator<Item = &'a Artifact>,
    out: &mut Plan,
) {
    for a in artifacts {
        if a.deprecated {
            out.unchanged
                .push(format!("version {} {} (deprecated)", product.name, a.name));
        } else {
            out.steps.push(deprecate(product, a));
        }
    }
}

/// A stable IdempotencyToken for a create: `sg` and 40 hex digits of SHA-256 over `parts`
/// (Service Catalog takes 1–128 characters of `[a-zA-Z0-9_-]`).
pub fn token(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.len().to_be_bytes());
        h.update(p.as_bytes());
    }
    format!("sg{}", &hex::encode(h.finalize())[..40])
}

/// A new product with its first version.
#[derive(Debug, Clone)]
pub struct NewProduct<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub version: NewVersion<'a>,
    pub token: String,
}

/// A new version of a product.
#[derive(Debug, Clone)]
pub struct NewVersion<'a> {
    pub name: &'a str,
    pub description: String,
    /// The template's https URL in S3.
    pub template_url: String,
}

/// The Service Catalog and S3 calls a publish makes. Every error keeps the SDK's message.
pub trait CatalogOps {
    /// The id of the portfolio called `name` (the oldest, if several are).
    fn find_portfolio(
        &self,
        name: &str,
    ) -> impl Future<Output = anyhow::Result<Option<String>>> + Send;
    /// CreatePortfolio; returns its id.
    fn create_portfolio(
        &self,
        name: &str,
        token: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// The portfolio's products with their versions, and the accounts it is shared with.
    fn current(&self, portfolio_id: &str) -> impl Future<Output = anyhow::Result<Current>> + Send;
    /// Uploads a template; returns the https URL Service Catalog reads it from.
    fn upload_template(
        &self,
        key: &str,
        body: &str,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// CreateProduct with its first version, then AssociateProductWithPortfolio; returns the
    /// product id.
    fn create_product(
        &self,
        portfolio_id: &str,
        product: NewProduct<'_>,
    ) -> impl Future<Output = anyhow::Result<String>> + Send;
    /// CreateProvisioningArtifact.
    fn add_version(
        &self,
        product_id: &str,
        version: NewVersion<'_>,
        token: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// UpdateProvisioningArtifact with Guidance `DEPRECATED` (still Active, for updates).
    fn deprecate(
        &self,
        product_id: &str,
        artifact_id: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
    /// CreatePortfolioShare with one account.
    fn share(
        &self,
        portfolio_id: &str,
        account: &str,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

#[cfg(test)]
mod tests;
