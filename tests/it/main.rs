//! The one integration-test binary. Each module drives real components started by the test
//! harness (`make test`): the OIDC provider, the AWS emulator, SQLite and PostgreSQL.

mod app;
mod audit;
mod aws;
mod blueprints;
mod cli;
mod engine;
mod input_limits;
mod journey;
mod oidc;
mod races;
mod security;
mod sessions;
mod support;
