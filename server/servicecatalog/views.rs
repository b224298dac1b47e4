//! The admin page of the Service Catalog publication.

use askama::Template;

use super::store::LastPublish;
use crate::web::{Layout, When};

#[derive(Template)]
#[template(path = "servicecatalog/index.html")]
pub struct ServiceCatalogPage {
    pub layout: Layout,
    pub portfolio_name: String,
    /// Whether the template bucket is configured (publishing needs it).
    pub bucket: Option<String>,
    pub last: Option<LastPublish>,
    pub when: Option<When>,
}
