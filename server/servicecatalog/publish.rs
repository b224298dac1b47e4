//! Runs a publish: reads the portfolio (creating it if missing), plans, makes the planned calls,
//! reads the portfolio again, and writes one audit record with before and after — also when a
//! call fails halfway (what was created by then stays, and the next publish carries on from it).

use std::collections::BTreeMap;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{
    AUDIT_ACTION, CatalogOps, Current, NewProduct, NewVersion, Product, Step, VersionState,
    WantedProduct, WantedVersion, plan, token,
};
use crate::audit::{self, Actor, Entry};
use std::sync::Arc;

use crate::catalog::{Blueprint, PolicyEngine, RenderContext};
use crate::db::Db;

/// Where to publish: the portfolio, the region templates are rendered for, the accounts to share
/// with.
#[derive(Debug, Clone)]
pub struct Target {
    pub portfolio_name: String,
    pub region: String,
    pub accounts: Vec<String>,
}

/// What a publish did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Publication {
    pub portfolio_id: String,
    pub portfolio_name: String,
    pub created: Vec<String>,
    pub unchanged: Vec<String>,
    pub deprecated: Vec<String>,
    /// Every account the portfolio is shared with after the publish.
    pub shared_with: Vec<String>,
    /// Blueprints not published, with the reason (a template that does not render).
    pub skipped: Vec<String>,
    /// The portfolio after the publish.
    pub products: Vec<Product>,
}

/// The stored blueprint versions Service Catalog should show: every published and deprecated
/// version (drafts and retired ones never), compiled, newest first per blueprint.
pub async fn publishable(
    db: &Db,
    library: &crate::catalog::versions::Library,
) -> anyhow::Result<Vec<(Arc<Blueprint>, VersionState)>> {
    use crate::catalog::versions::VersionState as Stored;
    let mut out = Vec::new();
    for (slug, version, state) in crate::catalog::store::summary(db).await? {
        let state = match state.parse::<Stored>() {
            Ok(Stored::Published) => VersionState::Published,
            Ok(Stored::Deprecated) => VersionState::Deprecated,
            _ => continue,
        };
        if let Some((bp, _)) = library
            .get(&slug, &version)
            .await
            .with_context(|| format!("compiling {slug} {version}"))?
        {
            out.push((bp, state));
        }
    }
    Ok(out)
}

/// The blueprint versions as Service Catalog should show them: one product per blueprint (named
/// and described by its newest version), one version each, its template rendered from the
/// `default` example for the blueprint's first environment class in `region`. A version whose
/// template does not render or fails the policy rules is skipped with the reason: Service
/// Catalog launches without the portal's review, so only templates that pass the rules go there.
pub fn wanted(
    versions: &[(Arc<Blueprint>, VersionState)],
    policy: &PolicyEngine,
    region: &str,
) -> (Vec<WantedProduct>, Vec<String>) {
    let mut out: Vec<WantedProduct> = Vec::new();
    let mut skipped = Vec::new();
    for (bp, state) in versions {
        let template = match render(bp, region).and_then(|body| checked(policy, body)) {
            Ok(t) => t,
            Err(reason) => {
                skipped.push(format!("{} {}: {reason}", bp.slug, bp.version));
                continue;
            }
        };
        let version = WantedVersion {
            version: bp.version.clone(),
            digest: bp.digest.clone(),
            state: *state,
            template,
        };
        match out.iter_mut().find(|p| p.slug == bp.slug) {
            Some(product) => product.versions.push(version),
            None => out.push(WantedProduct {
                slug: bp.slug.clone(),
                name: bp.name.clone(),
                summary: bp.summary.clone(),
                versions: vec![version],
            }),
        }
    }
    (out, skipped)
}

fn checked(policy: &PolicyEngine, body: String) -> Result<String, String> {
    let report = policy.check(&body);
    if report.passed {
        return Ok(body);
    }
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.rule.as_str())
        .collect();
    Err(format!("fails the policy rules {}", failed.join(", ")))
}

fn render(bp: &Blueprint, region: &str) -> Result<String, String> {
    let class = *bp.classes.first().ok_or("it names no environment class")?;
    let mut ctx = RenderContext::new(class, region, "catalog", "service-catalog");
    let values = match bp.example("default") {
        Some(example) => {
            bp.apply_example(example, &mut ctx);
            bp.example_values(example)
        }
        None => BTreeMap::new(),
    };
    bp.render(&ctx, &values).map(|r| r.body).map_err(|errors| {
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Publishes `wanted` into the portfolio called `portfolio_name`, shared with `accounts`,
/// filling `out` as it goes (so a failure still reports what was done).
pub async fn run<C: CatalogOps>(
    ops: &C,
    portfolio_name: &str,
    wanted: &[WantedProduct],
    accounts: &[String],
    out: &mut Publication,
) -> anyhow::Result<(Current, Current)> {
    out.portfolio_name = portfolio_name.to_string();
    let portfolio = match ops.find_portfolio(portfolio_name).await? {
        Some(id) => {
            out.unchanged.push(format!("portfolio {portfolio_name}"));
            id
        }
        None => {
            let id = ops
                .create_portfolio(portfolio_name, &token(&["portfolio", portfolio_name]))
                .await?;
            out.created.push(format!("portfolio {portfolio_name}"));
            id
        }
    };
    out.portfolio_id = portfolio.clone();
    let before = ops.current(&portfolio).await?;
    let planned = plan(wanted, &before, accounts);
    out.unchanged.extend(planned.unchanged);
    let mut product_ids: BTreeMap<&str, String> = wanted
        .iter()
        .filter_map(|w| {
            let found = before.products.iter().find(|p| p.name == w.name)?;
            Some((w.slug.as_str(), found.id.clone()))
        })
        .collect();
    for step in planned.steps {
        match step {
            Step::CreateProduct { slug, version } => {
                let (w, v) = find(wanted, &slug, &version)?;
                let new = new_version(ops, w, v).await?;
                let product = NewProduct {
                    name: &w.name,
                    description: &w.summary,
                    version: new,
                    token: token(&["product", &portfolio, &slug, &version]),
                };
                let id = ops.create_product(&portfolio, product).await?;
                product_ids.insert(w.slug.as_str(), id);
                out.created
                    .push(format!("product {} {}", w.name, v.version));
            }
            Step::AddVersion { slug, version } => {
                let (w, v) = find(wanted, &slug, &version)?;
                let product_id = product_ids
                    .get(w.slug.as_str())
                    .with_context(|| format!("no product for {slug}"))?;
                let new = new_version(ops, w, v).await?;
                let t = token(&["version", &portfolio, &slug, &version]);
                ops.add_version(product_id, new, &t).await?;
                out.created
                    .push(format!("version {} {}", w.name, v.version));
            }
            Step::Deprecate {
                product_id,
                artifact_id,
                label,
            } => {
                ops.deprecate(&product_id, &artifact_id).await?;
                out.deprecated.push(format!("version {label}"));
            }
            Step::Share { account } => {
                ops.share(&portfolio, &account).await?;
                out.created.push(format!("share {account}"));
            }
        }
    }
    let after = ops.current(&portfolio).await?;
    out.shared_with = after.shared_with.iter().cloned().collect();
    out.products = after.products.clone();
    Ok((before, after))
}

fn find<'a>(
    wanted: &'a [WantedProduct],
    slug: &str,
    version: &str,
) -> anyhow::Result<(&'a WantedProduct, &'a WantedVersion)> {
    wanted
        .iter()
        .filter(|w| w.slug == slug)
        .flat_map(|w| w.versions.iter().map(move |v| (w, v)))
        .find(|(_, v)| v.version == version)
        .with_context(|| format!("the plan names {slug} {version}, which is not in the catalog"))
}

/// Uploads the version's template (named by its content, so a re-upload writes the same object)
/// and describes the version by its digest.
async fn new_version<'a, C: CatalogOps>(
    ops: &C,
    w: &WantedProduct,
    v: &'a WantedVersion,
) -> anyhow::Result<NewVersion<'a>> {
    let body_digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        v.template.as_bytes(),
    ));
    let key = format!(
        "stackgate/{}/{}/{}.json",
        w.slug,
        v.version,
        &body_digest[..16]
    );
    let template_url = ops.upload_template(&key, &v.template).await?;
    Ok(NewVersion {
        name: &v.version,
        description: format!(
            "{} {} from stackgate; blueprint digest sha256:{}",
            w.slug, v.version, v.digest
        ),
        template_url,
    })
}

/// Publishes and writes the audit record (`service_catalog.published`, outcome `success` or
/// `failure`) with before and after counts and what was done. Returns the publication, or the
/// error after auditing it.
pub async fn publish_and_audit<C: CatalogOps>(
    db: &Db,
    ops: &C,
    actor: &Actor,
    source_ip: Option<String>,
    versions: Vec<(Arc<Blueprint>, VersionState)>,
    policy: Arc<PolicyEngine>,
    target: &Target,
) -> anyhow::Result<Publication> {
    let portfolio_name = target.portfolio_name.as_str();
    // Rendering and the policy checks are CPU work: off the async executor.
    let region = target.region.clone();
    let (wanted, skipped) =
        tokio::task::spawn_blocking(move || wanted(&versions, &policy, &region))
            .await
            .context("rendering the blueprints for Service Catalog")?;
    let mut out = Publication {
        skipped,
        ..Publication::default()
    };
    let result = run(ops, portfolio_name, &wanted, &target.accounts, &mut out).await;
    let (outcome, before, after, error) = match &result {
        Ok((before, after)) => ("success", before.counts(), after.counts(), None),
        Err(e) => (
            "failure",
            serde_json::Value::Null,
            serde_json::Value::Null,
            Some(format!("{e:#}")),
        ),
    };
    let mut detail = serde_json::to_value(&out).context("describing the publication")?;
    detail["before"] = before;
    detail["after"] = after;
    detail["error"] = error.into();
    let object = if out.portfolio_id.is_empty() {
        portfolio_name.to_string()
    } else {
        out.portfolio_id.clone()
    };
    let entry = Entry::new(actor, AUDIT_ACTION, "service_catalog_portfolio", object)
        .outcome(outcome)
        .detail(detail)
        .source_ip(source_ip);
    audit::store::append_alone(db, entry)
        .await
        .context("writing the audit record of the publish")?;
    result.map(|_| out)
}

/// Why a publish cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "Publishing needs STACKGATE_SERVICE_CATALOG_BUCKET: Service Catalog reads each version's \
         template from an S3 URL."
    )]
    NoBucket,
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// Publishes the catalog with the portal's settings: the configured portfolio, shared with every
/// active account of the registry but the portal's own, templates uploaded to the configured
/// bucket. The actor is the admin (or the command line).
pub async fn publish_configured(
    db: &Db,
    config: &crate::config::Config,
    library: &crate::catalog::versions::Library,
    policy: Arc<PolicyEngine>,
    actor: &Actor,
    source_ip: Option<String>,
) -> Result<Publication, PublishError> {
    let bucket = config
        .service_catalog_bucket
        .as_deref()
        .ok_or(PublishError::NoBucket)?;
    let own_account = config
        .portal_role_arn
        .as_deref()
        .and_then(|arn| arn.split(':').nth(4));
    let accounts: Vec<String> = crate::accounts::store::list(db)
        .await
        .context("reading the account registry")
        .map_err(PublishError::Failed)?
        .into_iter()
        .filter(|a| a.status == crate::accounts::Status::Active)
        .map(|a| a.id.to_string())
        .filter(|id| Some(id.as_str()) != own_account)
        .collect();
    let settings = crate::aws::AwsSettings {
        endpoint_url: config.aws_endpoint_url.clone(),
        sts_region: config.aws_region.clone(),
    };
    let client = super::client::ScClient::new(&settings, bucket).await;
    let target = Target {
        portfolio_name: config.service_catalog_portfolio.clone(),
        region: client.region().to_string(),
        accounts,
    };
    let versions = publishable(db, library)
        .await
        .map_err(PublishError::Failed)?;
    publish_and_audit(db, &client, actor, source_ip, versions, policy, &target)
        .await
        .map_err(PublishError::Failed)
}
