//! The account registry across restarts, on SQLite and PostgreSQL: an account's ExternalId is
//! generated once, when the account is first registered, and stays the same when the portal
//! starts again and when the registry's entry for the account changes.

use std::collections::{BTreeMap, BTreeSet};

use crate::app::{Backend, TestApp};

const DEV: &str = "200000000001";

/// Each registered account's ExternalId.
async fn external_ids(app: &TestApp) -> BTreeMap<String, String> {
    stackgate::accounts::store::list(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id.to_string(), a.external_id))
        .collect()
}

/// How many audit records of `action` name account `id`.
async fn account_records(app: &TestApp, id: &str, action: &str) -> usize {
    stackgate::audit::store::for_object(&app.state.db, "account", id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == action)
        .count()
}

async fn external_ids_survive_restarts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = external_ids(&app).await;
    assert_eq!(
        first.len(),
        7,
        "the demo registry's seven accounts: {first:?}"
    );
    let distinct: BTreeSet<&String> = first.values().collect();
    assert_eq!(distinct.len(), 7, "one ExternalId per account: {first:?}");
    assert!(
        first.iter().all(|(id, x)| x.len() >= 32 && x != id),
        "{first:?}"
    );

    // The same registry again.
    let url = app.stop_keeping_database().await;
    let app = TestApp::spawn_with(backend, &[("STACKGATE_DATABASE_URL", &url)]).await;
    assert_eq!(external_ids(&app).await, first, "after a restart");
    assert_eq!(account_records(&app, DEV, "account.registered").await, 1);
    assert_eq!(account_records(&app, DEV, "account.updated").await, 0);

    // The registry gives the dev account another deploy role: the account is updated (and
    // audited as such), its ExternalId is not.
    let url = app.stop_keeping_database().await;
    let role = format!("arn:aws:iam::{DEV}:role/stackgate-deploy-v2");
    let registry = crate::support::registry_with_deploy_role(DEV, &role);
    let app = TestApp::spawn_with(
        backend,
        &[
            ("STACKGATE_DATABASE_URL", &url),
            ("STACKGATE_CONFIG", &registry),
        ],
    )
    .await;
    let _ = std::fs::remove_file(&registry);
    assert_eq!(
        external_ids(&app).await,
        first,
        "after the registry changed"
    );
    let dev = stackgate::accounts::store::get(&app.state.db, DEV)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dev.deploy_role_arn.as_str(), role);
    assert_eq!(account_records(&app, DEV, "account.updated").await, 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_external_id_stays_the_same_across_restarts_and_registry_changes_on_sqlite() {
    external_ids_survive_restarts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_external_id_stays_the_same_across_restarts_and_registry_changes_on_postgres() {
    external_ids_survive_restarts(Backend::Postgres).await;
}
