//! The vocabulary of a change to a stack, shared by the configuration, the approval rules and
//! the worker: a change set's resource changes, the risk flags derived from them, and the
//! change windows approved changes wait for.

pub mod risk;
pub mod window;

use serde::{Deserialize, Serialize};

pub use risk::RiskFlag;
pub use window::ChangeWindow;

/// A resource change of a change set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub logical_id: String,
    pub resource_type: String,
    /// `Add`, `Modify`, `Remove`, `Import`, `Dynamic`.
    pub action: String,
    /// `True`, `False`, `Conditional`; `None` when not reported.
    pub replacement: Option<String>,
}
