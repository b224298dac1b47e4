//! The home page's view.

use askama::Template;

use crate::requests::views::RequestRow;
use crate::web::Layout;

#[derive(Template)]
#[template(path = "home/index.html")]
pub struct HomePage {
    pub layout: Layout,
    pub teams: Vec<String>,
    pub environments: Vec<RequestRow>,
    pub more_environments: bool,
    pub open: Vec<RequestRow>,
    pub more_open: bool,
    pub waiting: Vec<RequestRow>,
    pub more_waiting: bool,
    pub waiting_badge: String,
    pub recent: Vec<RequestRow>,
}
