//! The deployment engine at its failure points, against `FakeAws` ([`fake`]): an in-memory,
//! scriptable STS + CloudFormation that records every call. The portal side is real
//! ([`scenario`]): a fresh SQLite file, the demo account registry, a request submitted and
//! approved through the library's own functions, and `Worker::run_once` driven step by step. No
//! IdP, no emulator.
//!
//! The cases, by subject:
//! - [`cases_deploy`]: a deployment from start to end, what it sends to AWS, and each kind of end
//!   (deployed, rolled back, a failed rollback, an unassumable role, a stack it does not own);
//! - [`cases_recovery`]: answers lost and transient errors, found out from AWS instead of done
//!   twice, and the retry budget;
//! - [`cases_workers`]: workers that die, lose their lease, are stopped, or wait on slow calls;
//! - [`cases_change_sets`]: change sets someone else made obsolete or removed;
//! - [`cases_approval`]: only what was approved, as it was approved, is deployed.

mod cases_approval;
mod cases_change_sets;
mod cases_deploy;
mod cases_recovery;
mod cases_workers;
mod fake;
mod scenario;

const DEV: &str = "200000000001";
const REGION: &str = "eu-west-2";
