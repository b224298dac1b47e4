//! The home page (a team's environments and requests), the catalog page, and the paginated
//! request list the home sections link to.

pub mod routes;

use crate::http::layout::When;
use crate::requests::ServiceRequest;
use crate::requests::store::Summary;

/// A request as a row of a list.
#[derive(Debug, Clone)]
pub struct RequestRow {
    pub id: String,
    pub number: i64,
    pub title: String,
    pub team: String,
    pub env_class: String,
    pub env_name: String,
    pub account_name: String,
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
    pub status: String,
    pub status_label: String,
    pub requester_name: String,
    pub created: When,
    pub updated: When,
}

impl From<&Summary> for RequestRow {
    fn from(r: &Summary) -> Self {
        RequestRow {
            id: r.id.clone(),
            number: r.number,
            title: r.title.clone(),
            team: r.team.clone(),
            env_class: r.env_class.as_str().to_string(),
            env_name: r.env_name.clone(),
            account_name: r.account_name.clone(),
            account_id: r.account_id.clone(),
            region: r.region.clone(),
            stack_name: r.stack_name.clone(),
            status: r.status.as_str().to_string(),
            status_label: r.status.label().to_string(),
            requester_name: r.requester_name.clone(),
            created: When::at(r.created_at),
            updated: When::at(r.updated_at),
        }
    }
}

impl From<&ServiceRequest> for RequestRow {
    fn from(r: &ServiceRequest) -> Self {
        RequestRow::from(&r.summary())
    }
}
