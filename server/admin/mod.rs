//! The admin area's front page: one place that leads to each admin page (accounts, blueprint
//! versions, approval policies, users, Service Catalog). Each area lives in its own domain
//! folder; this module only links them.

pub mod routes;
pub mod views;

/// One admin area as the front page lists it.
pub struct Area {
    pub href: &'static str,
    pub title: &'static str,
    pub what: &'static str,
}

/// The admin areas, in the order an admin onboarding an estate meets them.
pub const AREAS: &[Area] = &[
    Area {
        href: "/admin/accounts",
        title: "Accounts",
        what: "the account registry: purposes, deploy roles, ExternalIds, trust policies, access checks",
    },
    Area {
        href: "/admin/blueprints",
        title: "Blueprint versions",
        what: "upload, check, publish, deprecate and retire blueprint versions",
    },
    Area {
        href: "/admin/policies",
        title: "Approval policies",
        what: "how many approvals each class of environment needs, from which groups, per risk flag",
    },
    Area {
        href: "/admin/users",
        title: "Users and sessions",
        what: "who has signed in; disable a user or end their sessions",
    },
    Area {
        href: "/admin/service-catalog",
        title: "AWS Service Catalog",
        what: "publish the blueprints that pass the policy rules as a shared portfolio",
    },
];
