//! [`CatalogOps`] with the AWS SDK: Service Catalog in the portal's own account and region, and S3
//! for the templates (Service Catalog takes a version's template only from a URL it fetches, an
//! S3 object in practice).

use anyhow::{Context, anyhow};
use aws_sdk_servicecatalog::error::DisplayErrorContext;
use aws_sdk_servicecatalog::types::{
    ProductType, ProvisioningArtifactGuidance, ProvisioningArtifactProperties,
    ProvisioningArtifactType,
};

use super::{Artifact, CatalogOps, Current, NewProduct, NewVersion, OWNER, Product};
use crate::aws::AwsSettings;

/// Region of the portal's own calls when neither the setting nor the SDK's chain names one.
const FALLBACK_REGION: &str = "us-east-1";

/// Service Catalog and S3 clients acting as the portal itself.
#[derive(Debug, Clone)]
pub struct ScClient {
    sc: aws_sdk_servicecatalog::Client,
    s3: aws_sdk_s3::Client,
    bucket: String,
    region: String,
}

fn sdk<E: std::error::Error + Send + Sync + 'static>(
    call: &str,
) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("Service Catalog {call}: {}", DisplayErrorContext(e))
}

impl ScClient {
    /// Clients for the portal's own account (credentials from the standard chain), with the
    /// endpoint and region of `settings`; templates go to `bucket`.
    pub async fn new(settings: &AwsSettings, bucket: &str) -> ScClient {
        let shared = crate::aws::sdk_loader(settings).load().await;
        let region = shared
            .region()
            .map_or(FALLBACK_REGION.to_string(), |r| r.to_string());
        let s3 = aws_sdk_s3::config::Builder::from(&shared)
            .region(aws_config::Region::new(region.clone()))
            .force_path_style(settings.endpoint_url.is_some())
            .build();
        let sc = aws_sdk_servicecatalog::config::Builder::from(&shared)
            .region(aws_config::Region::new(region.clone()))
            .build();
        ScClient {
            sc: aws_sdk_servicecatalog::Client::from_conf(sc),
            s3: aws_sdk_s3::Client::from_conf(s3),
            bucket: bucket.to_string(),
            region,
        }
    }

    /// The region the portfolio lives in.
    pub fn region(&self) -> &str {
        &self.region
    }

    async fn artifacts(&self, product_id: &str) -> anyhow::Result<Vec<Artifact>> {
        let out = self
            .sc
            .list_provisioning_artifacts()
            .product_id(product_id)
            .send()
            .await
            .map_err(sdk("ListProvisioningArtifacts"))?;
        Ok(out
            .provisioning_artifact_details()
            .iter()
            .map(|a| Artifact {
                id: a.id().unwrap_or_default().to_string(),
                name: a.name().unwrap_or_default().to_string(),
                description: a.description().unwrap_or_default().to_string(),
                active: a.active().unwrap_or(true),
                deprecated: a.guidance() == Some(&ProvisioningArtifactGuidance::Deprecated),
            })
            .collect())
    }

    async fn products(&self, portfolio_id: &str) -> anyhow::Result<Vec<Product>> {
        let mut products = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let out = self
                .sc
                .search_products_as_admin()
                .portfolio_id(portfolio_id)
                .set_page_token(page)
                .send()
                .await
                .map_err(sdk("SearchProductsAsAdmin"))?;
            for view in out.product_view_details() {
                let Some(summary) = view.product_view_summary() else {
                    continue;
                };
                let id = summary.product_id().unwrap_or_default().to_string();
                products.push(Product {
                    artifacts: self.artifacts(&id).await?,
                    name: summary.name().unwrap_or_default().to_string(),
                    id,
                });
            }
            page = out.next_page_token().map(str::to_string);
            if page.is_none() {
                return Ok(products);
            }
        }
    }
}

impl CatalogOps for ScClient {
    async fn find_portfolio(&self, name: &str) -> anyhow::Result<Option<String>> {
        let mut found: Vec<(Option<f64>, String)> = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let out = self
                .sc
                .list_portfolios()
                .set_page_token(page)
                .send()
                .await
                .map_err(sdk("ListPortfolios"))?;
            for p in out.portfolio_details() {
                if p.display_name() == Some(name) {
                    let at = p.created_time().map(|t| t.as_secs_f64());
                    found.push((at, p.id().unwrap_or_default().to_string()));
                }
            }
            page = out.next_page_token().map(str::to_string);
            if page.is_none() {
                break;
            }
        }
        found.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        Ok(found.into_iter().next().map(|(_, id)| id))
    }

    async fn create_portfolio(&self, name: &str, token: &str) -> anyhow::Result<String> {
        let out = self
            .sc
            .create_portfolio()
            .display_name(name)
            .provider_name(OWNER)
            .description("Blueprints published by stackgate.")
            .idempotency_token(token)
            .send()
            .await
            .map_err(sdk("CreatePortfolio"))?;
        out.portfolio_detail()
            .and_then(|p| p.id())
            .map(str::to_string)
            .context("CreatePortfolio answered without a portfolio id")
    }

    async fn current(&self, portfolio_id: &str) -> anyhow::Result<Current> {
        let products = self.products(portfolio_id).await?;
        let mut shared_with = std::collections::BTreeSet::new();
        let mut page: Option<String> = None;
        loop {
            let out = self
                .sc
                .list_portfolio_access()
                .portfolio_id(portfolio_id)
                .set_page_token(page)
                .send()
                .await
                .map_err(sdk("ListPortfolioAccess"))?;
            shared_with.extend(out.account_ids().iter().cloned());
            page = out.next_page_token().map(str::to_string);
            if page.is_none() {
                return Ok(Current {
                    products,
                    shared_with,
                });
            }
        }
    }

    async fn upload_template(&self, key: &str, body: &str) -> anyhow::Result<String> {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(aws_sdk_s3::primitives::ByteStream::from(
                body.as_bytes().to_vec(),
            ))
            .send()
            .await
            .map_err(|e| anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("writing s3://{}/{key}", self.bucket))?;
        // The virtual-hosted URL Service Catalog fetches (the emulator stores it unread).
        Ok(format!(
            "https://{}.s3.{}.amazonaws.com/{key}",
            self.bucket, self.region
        ))
    }

    async fn create_product(
        &self,
        portfolio_id: &str,
        product: NewProduct<'_>,
    ) -> anyhow::Result<String> {
        let out = self
            .sc
            .create_product()
            .name(product.name)
            .owner(OWNER)
            .distributor(OWNER)
            .description(product.description)
            .product_type(ProductType::CloudFormationTemplate)
            .provisioning_artifact_parameters(properties(&product.version))
            .idempotency_token(product.token)
            .send()
            .await
            .map_err(sdk("CreateProduct"))?;
        let id = out
            .product_view_detail()
            .and_then(|d| d.product_view_summary())
            .and_then(|s| s.product_id())
            .map(str::to_string)
            .context("CreateProduct answered without a product id")?;
        self.sc
            .associate_product_with_portfolio()
            .product_id(&id)
            .portfolio_id(portfolio_id)
            .send()
            .await
            .map_err(sdk("AssociateProductWithPortfolio"))?;
        Ok(id)
    }

    async fn add_version(
        &self,
        product_id: &str,
        version: NewVersion<'_>,
        token: &str,
    ) -> anyhow::Result<()> {
        self.sc
            .create_provisioning_artifact()
            .product_id(product_id)
            .parameters(properties(&version))
            .idempotency_token(token)
            .send()
            .await
            .map_err(sdk("CreateProvisioningArtifact"))?;
        Ok(())
    }

    async fn deprecate(&self, product_id: &str, artifact_id: &str) -> anyhow::Result<()> {
        self.sc
            .update_provisioning_artifact()
            .product_id(product_id)
            .provisioning_artifact_id(artifact_id)
            .guidance(ProvisioningArtifactGuidance::Deprecated)
            .send()
            .await
            .map_err(sdk("UpdateProvisioningArtifact"))?;
        Ok(())
    }

    async fn share(&self, portfolio_id: &str, account: &str) -> anyhow::Result<()> {
        self.sc
            .create_portfolio_share()
            .portfolio_id(portfolio_id)
            .account_id(account)
            .send()
            .await
            .map_err(sdk("CreatePortfolioShare"))?;
        Ok(())
    }
}

fn properties(v: &NewVersion<'_>) -> ProvisioningArtifactProperties {
    ProvisioningArtifactProperties::builder()
        .name(v.name)
        .description(&v.description)
        .info("LoadTemplateFromURL", &v.template_url)
        .r#type(ProvisioningArtifactType::CloudFormationTemplate)
        .build()
}
