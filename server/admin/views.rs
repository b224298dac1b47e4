//! The admin front page's view.

use askama::Template;

use super::Area;
use crate::web::Layout;

#[derive(Template)]
#[template(path = "admin/index.html")]
pub struct AdminPage {
    pub layout: Layout,
    pub areas: &'static [Area],
}
