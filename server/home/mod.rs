//! The home page (a team's environments and requests, what waits for the user's review).

pub mod routes;
pub mod views;
