//! The admin pages of the account registry: the list, one account, and the add/edit form.

use std::collections::BTreeMap;

use askama::Template;

use super::input::AccountForm;
use super::trust::BootstrapParameters;
use super::{Account, LastCheck};
use crate::web::{Layout, When};

/// The last check as a page shows it.
pub struct CheckView {
    pub ok: bool,
    pub reason: String,
    pub when: When,
}

impl CheckView {
    pub fn of(check: &Option<LastCheck>) -> Option<CheckView> {
        check.as_ref().map(|c| CheckView {
            ok: c.ok,
            reason: c.reason.clone(),
            when: When::at(c.at),
        })
    }
}

pub struct AccountRow {
    pub account: Account,
    pub check: Option<CheckView>,
}

#[derive(Template)]
#[template(path = "accounts/list.html")]
pub struct AccountListPage {
    pub layout: Layout,
    pub rows: Vec<AccountRow>,
}

#[derive(Template)]
#[template(path = "accounts/show.html")]
pub struct AccountPage {
    pub layout: Layout,
    pub account: Account,
    pub check: Option<CheckView>,
    /// Pretty JSON, as pasted into IAM.
    pub trust_policy: String,
    pub bootstrap: BootstrapParameters,
}

#[derive(Template)]
#[template(path = "accounts/form.html")]
pub struct AccountFormPage {
    pub layout: Layout,
    /// `None` when adding an account.
    pub editing: Option<String>,
    /// Whether the config file names the account (its values come back at the next start).
    pub from_config: bool,
    pub form: AccountForm,
    pub errors: BTreeMap<String, String>,
    pub purposes: &'static [&'static str],
    pub teams: Vec<String>,
}

impl AccountFormPage {
    pub fn error(&self, field: &str) -> Option<&String> {
        self.errors.get(field)
    }
}
