//! The plan: which Service Catalog calls turn what exists into what the catalog says.

use super::*;

fn version(v: &str, state: VersionState) -> WantedVersion {
    WantedVersion {
        version: v.into(),
        digest: format!("digest-{v}"),
        state,
        template: "{}".into(),
    }
}

fn wanted(slug: &str, versions: Vec<WantedVersion>) -> WantedProduct {
    WantedProduct {
        slug: slug.into(),
        name: format!("{slug} blueprint"),
        summary: "s".into(),
        versions,
    }
}

fn artifact(name: &str, deprecated: bool) -> Artifact {
    Artifact {
        id: format!("pa-{name}"),
        name: name.into(),
        description: String::new(),
        active: true,
        deprecated,
    }
}

fn product(slug: &str, artifacts: Vec<Artifact>) -> Product {
    Product {
        id: format!("prod-{slug}"),
        name: format!("{slug} blueprint"),
        artifacts,
    }
}

fn accounts(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn an_empty_portfolio_gets_every_product_and_every_share() {
    let want = vec![
        wanted("network", vec![version("1.1.0", VersionState::Published)]),
        wanted(
            "web",
            vec![
                version("1.0.0", VersionState::Published),
                version("1.1.0", VersionState::Published),
                version("0.9.0", VersionState::Deprecated),
            ],
        ),
    ];
    let plan = plan(&want, &Current::default(), &accounts(&["2", "1", "2"]));
    assert_eq!(
        plan.steps,
        vec![
            Step::CreateProduct {
                slug: "network".into(),
                version: "1.1.0".into()
            },
            Step::CreateProduct {
                slug: "web".into(),
                version: "1.0.0".into()
            },
            Step::AddVersion {
                slug: "web".into(),
                version: "1.1.0".into()
            },
            Step::Share {
                account: "1".into()
            },
            Step::Share {
                account: "2".into()
            },
        ]
    );
    assert!(plan.unchanged.is_empty());
}

#[test]
fn publishing_what_is_already_there_plans_nothing() {
    let want = vec![wanted(
        "network",
        vec![
            version("1.0.0", VersionState::Deprecated),
            version("1.1.0", VersionState::Published),
        ],
    )];
    let current = Current {
        products: vec![product(
            "network",
            vec![artifact("1.0.0", true), artifact("1.1.0", false)],
        )],
        shared_with: ["1".to_string()].into(),
    };
    let plan = plan(&want, &current, &accounts(&["1"]));
    assert_eq!(plan.steps, vec![]);
    assert_eq!(
        plan.unchanged,
        vec![
            "version network blueprint 1.0.0",
            "version network blueprint 1.1.0",
            "share 1"
        ]
    );
}

#[test]
fn a_new_version_adds_one_artifact_and_a_new_account_one_share() {
    let want = vec![wanted(
        "network",
        vec![
            version("1.1.0", VersionState::Published),
            version("1.2.0", VersionState::Published),
        ],
    )];
    let current = Current {
        products: vec![product("network", vec![artifact("1.1.0", false)])],
        shared_with: ["1".to_string()].into(),
    };
    let plan = plan(&want, &current, &accounts(&["1", "3"]));
    assert_eq!(
        plan.steps,
        vec![
            Step::AddVersion {
                slug: "network".into(),
                version: "1.2.0".into()
            },
            Step::Share {
                account: "3".into()
            },
        ]
    );
}

#[test]
fn deprecated_and_vanished_versions_are_deprecated_never_deleted() {
    let want = vec![wanted(
        "network",
        vec![
            version("1.0.0", VersionState::Deprecated),
            version("2.0.0", VersionState::Published),
        ],
    )];
    let current = Current {
        products: vec![
            product(
                "network",
                vec![
                    artifact("1.0.0", false),
                    artifact("0.1.0", false),
                    artifact("2.0.0", false),
                ],
            ),
            product(
                "retired",
                vec![artifact("3.0.0", false), artifact("2.0.0", true)],
            ),
        ],
        shared_with: Default::default(),
    };
    let plan = plan(&want, &current, &[]);
    let deprecated: Vec<&str> = plan
        .steps
        .iter()
        .map(|s| match s {
            Step::Deprecate { label, .. } => label.as_str(),
            other => panic!("only deprecations expected, got {other:?}"),
        })
        .collect();
    assert_eq!(
        deprecated,
        vec![
            "network blueprint 1.0.0",
            "network blueprint 0.1.0",
            "retired blueprint 3.0.0"
        ]
    );
    assert!(
        plan.unchanged
            .contains(&"version retired blueprint 2.0.0 (deprecated)".to_string())
    );
}

#[test]
fn tokens_are_stable_distinct_and_valid_for_service_catalog() {
    let a = token(&["artifact", "port-1", "network", "1.1.0"]);
    assert_eq!(a, token(&["artifact", "port-1", "network", "1.1.0"]));
    assert_ne!(a, token(&["artifact", "port-2", "network", "1.1.0"]));
    assert_ne!(a, token(&["artifact", "port-1", "network", "1.1.1"]));
    // Lengths are hashed too: moving a character between parts changes the token.
    assert_ne!(token(&["ab", "c"]), token(&["a", "bc"]));
    assert_eq!(a.len(), 42);
    assert!(
        a.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
}

#[test]
fn counts_name_products_versions_and_shares() {
    let current = Current {
        products: vec![product(
            "a",
            vec![artifact("1", false), artifact("2", true)],
        )],
        shared_with: ["1".to_string(), "2".to_string()].into(),
    };
    assert_eq!(
        current.counts(),
        serde_json::json!({"products": 1, "versions": 2, "shares": 2})
    );
}
