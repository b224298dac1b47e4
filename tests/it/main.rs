//! The one integration-test binary. Each module drives real components started by the test
//! harness (`make test`): the OIDC provider, the AWS emulator, SQLite and PostgreSQL.

// Test code: failing loudly is the point. (Unit tests get the same from clippy.toml, which
// clippy applies only inside `#[cfg(test)]` items, not to an integration crate's helpers.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod admin;
mod admin_accounts;
mod admin_blueprints;
mod admin_policies;
mod admin_users;
mod app;
mod approvals;
mod audit;
mod aws;
mod blueprints;
mod change_sets;
mod checkpoints;
mod cli;
mod deployments;
mod emulator;
mod engine;
mod evidence;
mod input_limits;
mod journey;
mod notify;
mod oidc;
mod races;
mod registry;
mod requests;
mod security;
mod service_catalog;
mod sessions;
mod step_up;
mod support;
mod workloads;
