//! The catalog page's view.

use askama::Template;

use crate::web::Layout;

/// A blueprint as the catalog lists it.
pub struct BlueprintCard {
    pub slug: String,
    pub name: String,
    pub version: String,
    pub summary: String,
    pub digest_short: String,
    pub parameters: Vec<String>,
}

#[derive(Template)]
#[template(path = "catalog/index.html")]
pub struct CatalogPage {
    pub layout: Layout,
    pub blueprints: Vec<BlueprintCard>,
}
