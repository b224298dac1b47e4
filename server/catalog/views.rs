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

/// One blueprint's versions on the admin index.
pub struct SlugRow {
    pub slug: String,
    /// `(version, state)`, newest first.
    pub versions: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "catalog/admin_index.html")]
pub struct AdminIndexPage {
    pub layout: Layout,
    pub blueprints: Vec<SlugRow>,
}

/// A version in a blueprint's list.
pub struct VersionRow {
    pub version: String,
    pub state: String,
    pub origin: String,
    pub digest_short: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "catalog/admin_blueprint.html")]
pub struct AdminBlueprintPage {
    pub layout: Layout,
    pub slug: String,
    pub versions: Vec<VersionRow>,
    /// Why the last upload was refused, one line per problem.
    pub errors: Vec<String>,
}

#[derive(Template)]
#[template(path = "catalog/admin_version.html")]
pub struct AdminVersionPage {
    pub layout: Layout,
    pub slug: String,
    pub version: String,
    pub state: String,
    pub digest: String,
    pub origin: String,
    pub created: String,
    /// `(name, kind, defaults)` in form order.
    pub parameters: Vec<(String, String, String)>,
    pub template: String,
    pub previous: Option<String>,
    pub template_diff: String,
    pub parameter_diff: String,
    /// Transitions open from its state: `(action, label)`.
    pub actions: Vec<(String, String)>,
    pub errors: Vec<String>,
}
