//! Admins keep the account registry in the portal: the list and detail pages and API (purpose,
//! ExternalId, the deploy role's trust policy, account-bootstrap's parameters), access checks
//! against the emulator's trust-policy-enforcing STS, ExternalId rotation, disabling, the config
//! file's seeding across restarts, one audit record per action, the authorization walk, and bad
//! input on both backends.

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp, UserClient, extract};
use crate::emulator;
use crate::support::{audit_log, repo};

const DEV: &str = "200000000001";
const PROD: &str = "200000000003";
const PORTAL: &str = "arn:aws:iam::123456789012:role/stackgate-portal";

/// A fresh 12-digit account id, so that roles made in the shared emulator never collide.
fn fresh_account() -> String {
    let n = uuid::Uuid::new_v4().as_u128() % 100_000_000_000;
    format!("7{n:011}")
}

/// Registers an account through the API (a dev account of team payments); returns its detail.
async fn register(dave: &UserClient, id: &str, role: &str) -> serde_json::Value {
    let body = serde_json::json!({
        "id": id, "name": format!("acct-{}", &id[8..]), "purpose": "dev",
        "deploy_role_arn": role, "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let (code, created) = dave.api(Method::POST, "/accounts", Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    created
}

async fn check(dave: &UserClient, id: &str) -> serde_json::Value {
    let (code, out) = dave
        .api(Method::POST, &format!("/accounts/{id}/check"), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{out}");
    out
}

async fn detail(dave: &UserClient, id: &str) -> serde_json::Value {
    let (code, out) = dave
        .api(Method::GET, &format!("/accounts/{id}"), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{out}");
    out
}

async fn page(user: &UserClient, path: &str) -> (StatusCode, String) {
    let resp = user.get(path).await;
    (resp.status(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_shows_purposes_external_ids_trust_policies_and_bootstrap_parameters() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_PORTAL_ROLE_ARN", PORTAL)]).await;
    let dave = app.login("dave").await;

    let (code, list) = page(&dave, "/admin/accounts").await;
    assert_eq!(code, StatusCode::OK);
    let (_, api) = dave.api(Method::GET, "/accounts", None).await;
    let accounts = api["accounts"].as_array().unwrap();
    assert_eq!(accounts.len(), 7, "{api}");
    let purposes: std::collections::BTreeSet<&str> = accounts
        .iter()
        .map(|a| a["purpose"].as_str().unwrap())
        .collect();
    let want = [
        "dev",
        "log-archive",
        "management",
        "prod",
        "security",
        "shared-services",
        "test",
    ];
    assert_eq!(purposes.into_iter().collect::<Vec<_>>(), want);
    for a in accounts {
        let id = a["id"].as_str().unwrap();
        let row = extract(&list, &format!("id=\"account-{id}\""), "</tr>").unwrap();
        for shown in [
            a["purpose"].as_str().unwrap(),
            a["deploy_role_arn"].as_str().unwrap(),
            "active",
            "never",
        ] {
            assert!(row.contains(shown), "{id}: {shown} in {row}");
        }
        assert!(
            a.get("external_id").is_none(),
            "the list leaves ExternalIds to the detail"
        );
    }
    assert!(list.contains(">Admin</a>"), "admins see the Admin entry");

    let dev = detail(&dave, DEV).await;
    let external_id = dev["external_id"].as_str().unwrap().to_string();
    let policy = &dev["trust_policy"];
    let text = policy.to_string();
    let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(&reparsed, policy);
    let statements = policy["Statement"].as_array().unwrap();
    assert!(!statements.is_empty());
    for s in statements {
        assert_eq!(s["Principal"]["AWS"], PORTAL, "{s}");
        assert_eq!(
            s["Condition"]["StringEquals"]["sts:ExternalId"],
            external_id.as_str(),
            "{s}"
        );
    }
    for action in ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"] {
        assert!(text.contains(action), "{action}: {text}");
    }
    assert_eq!(dev["bootstrap_parameters"]["portal_role_arn"], PORTAL);
    assert_eq!(
        dev["bootstrap_parameters"]["external_id"],
        external_id.as_str()
    );
    assert_eq!(dev["bootstrap_parameters"]["organizations_admin"], false);
    let management = detail(&dave, "100000000001").await;
    assert_eq!(management["purpose"], "management");
    assert_eq!(
        management["bootstrap_parameters"]["organizations_admin"],
        true
    );

    let (code, html) = page(&dave, &format!("/admin/accounts/{DEV}")).await;
    assert_eq!(code, StatusCode::OK);
    let shown_id = extract(
        &html,
        "<code id=\"external-id\" class=\"selectable\">",
        "</code>",
    );
    assert_eq!(shown_id.as_deref(), Some(external_id.as_str()));
    assert!(html.contains("data-copy=\"external-id\""), "a copy button");
    assert!(html.contains("<script src=\"/static/copy.js\" defer></script>"));
    let pre = extract(
        &html,
        "<pre id=\"trust-policy\" class=\"selectable\">",
        "</pre>",
    )
    .unwrap();
    let pre = pre.replace("&#34;", "\"").replace("&quot;", "\"");
    let on_page: serde_json::Value = serde_json::from_str(&pre).unwrap();
    assert_eq!(&on_page, policy, "the page shows the policy the API gives");
    assert!(html.contains(PORTAL));
    let js = dave.get("/static/copy.js").await;
    assert_eq!(js.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_access_assumes_the_registry_role_and_says_why_it_was_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;

    // A demo account: the shared test role trusts the portal with any ExternalId.
    let ok = check(&dave, DEV).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(
        ok["reason"]
            .as_str()
            .unwrap()
            .contains("also admits a wrong ExternalId"),
        "{ok}"
    );
    let role = format!("arn:aws:iam::{DEV}:role/stackgate-deploy");
    let external_id = detail(&dave, DEV).await["external_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sent = emulator::assumed(&role).await;
    assert!(
        sent.iter().any(|r| r["external_id"] == external_id.as_str()
            && r["session_name"] == format!("stackgate-check-{DEV}")),
        "the check assumed the role with the account's ExternalId: {sent:?}"
    );
    let (_, html) = page(&dave, &format!("/admin/accounts/{DEV}")).await;
    assert!(html.contains("<strong>ok</strong>"), "{html}");

    // A role that does not exist.
    let missing = fresh_account();
    register(
        &dave,
        &missing,
        &format!("arn:aws:iam::{missing}:role/stackgate-deploy"),
    )
    .await;
    let refused = check(&dave, &missing).await;
    assert_eq!(refused["ok"], false);
    let why = refused["reason"].as_str().unwrap();
    assert!(
        why.contains("does not exist") && why.contains("ExternalId"),
        "{why}"
    );
    assert_eq!(detail(&dave, &missing).await["last_check"]["ok"], false);
    let (_, html) = page(&dave, &format!("/admin/accounts/{missing}")).await;
    assert!(
        html.contains("Check failed: AWS refused to let the portal assume"),
        "{html}"
    );

    // A role that wants another ExternalId.
    let other = fresh_account();
    let arn = emulator::create_role(
        &other,
        "stackgate-deploy",
        &emulator::deploy_role_trust_policy("some-other-external-id"),
    )
    .await;
    register(&dave, &other, &arn).await;
    let refused = check(&dave, &other).await;
    assert_eq!(refused["ok"], false);
    let why = refused["reason"].as_str().unwrap();
    assert!(why.contains("the ExternalId was rejected"), "{why}");
    let records = emulator::refused(&arn).await;
    assert!(
        records.iter().any(|r| r["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("sts:ExternalId")),
        "the emulator refused it for its ExternalId: {records:?}"
    );

    // A role that lets the portal in but not name the requester.
    let no_si = fresh_account();
    let registered = register(
        &dave,
        &no_si,
        &format!("arn:aws:iam::{no_si}:role/stackgate-deploy"),
    )
    .await;
    let xid = registered["external_id"].as_str().unwrap();
    emulator::create_role(
        &no_si,
        "stackgate-deploy",
        &serde_json::json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": {"StringEquals": {"sts:ExternalId": xid}}}]}),
    )
    .await;
    let refused = check(&dave, &no_si).await;
    assert_eq!(refused["ok"], false);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .starts_with("No SourceIdentity permission"),
        "{refused}"
    );

    // A role whose trust policy pins this account's ExternalId: ok, and no warning.
    let pinned = fresh_account();
    let registered = register(
        &dave,
        &pinned,
        &format!("arn:aws:iam::{pinned}:role/stackgate-deploy"),
    )
    .await;
    let xid = registered["external_id"].as_str().unwrap();
    emulator::create_role(
        &pinned,
        "stackgate-deploy",
        &emulator::deploy_role_trust_policy(xid),
    )
    .await;
    let ok = check(&dave, &pinned).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(!ok["reason"].as_str().unwrap().contains("Warning"), "{ok}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_external_id_shows_old_and_new_until_a_check_succeeds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let id = fresh_account();
    let first = register(
        &dave,
        &id,
        &format!("arn:aws:iam::{id}:role/stackgate-deploy"),
    )
    .await;
    let old = first["external_id"].as_str().unwrap().to_string();
    emulator::create_role(
        &id,
        "stackgate-deploy",
        &emulator::deploy_role_trust_policy(&old),
    )
    .await;
    assert_eq!(check(&dave, &id).await["ok"], true);

    let (code, rotated) = dave
        .api(
            Method::POST,
            &format!("/accounts/{id}/rotate-external-id"),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{rotated}");
    let new = rotated["external_id"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rotated["previous_external_id"], old.as_str());
    assert_eq!(
        rotated["last_check"],
        serde_json::Value::Null,
        "the old check says nothing of the new id"
    );
    assert_eq!(
        rotated["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        new.as_str()
    );

    // The role still trusts the old id: the check says so, and both stay shown.
    let refused = check(&dave, &id).await;
    assert_eq!(refused["ok"], false);
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("still expects the previous ExternalId"),
        "{refused}"
    );
    let (_, html) = page(&dave, &format!("/admin/accounts/{id}")).await;
    assert!(
        html.contains(&old) && html.contains(&new),
        "both ids on the page"
    );
    assert!(html.contains("id=\"previous-external-id\""));

    // The admin rolls out a role trusting the new id and points the registry at it.
    let v2 = emulator::create_role(
        &id,
        "stackgate-deploy-v2",
        &emulator::deploy_role_trust_policy(&new),
    )
    .await;
    let body = serde_json::json!({
        "name": first["name"], "purpose": "dev", "deploy_role_arn": v2,
        "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let (code, edited) = dave
        .api(Method::PUT, &format!("/accounts/{id}"), Some(body))
        .await;
    assert_eq!(code, StatusCode::OK, "{edited}");
    assert_eq!(check(&dave, &id).await["ok"], true);
    let after = detail(&dave, &id).await;
    assert_eq!(after["previous_external_id"], serde_json::Value::Null);
    assert_eq!(after["external_id"], new.as_str());
    let (_, html) = page(&dave, &format!("/admin/accounts/{id}")).await;
    assert!(
        !html.contains(&old),
        "the old id is gone after a successful check"
    );
    app.stop().await;
}

/// How many requests alice's teams have.
async fn request_count(alice: &UserClient) -> usize {
    let (code, list) = alice.api(Method::GET, "/requests", None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    list["requests"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_disabled_account_or_one_whose_check_failed_are_refused_before_approval() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let alice = app.login("alice").await;

    let (code, disabled) = dave
        .api(
            Method::POST,
            &format!("/accounts/{DEV}/disable"),
            Some(serde_json::json!({"reason": "being decommissioned"})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["status"], "disabled");
    let body = serde_json::json!({
        "blueprint": "network", "account_id": DEV, "region": "eu-west-2", "name": "refused"
    });
    let (code, out) = alice
        .api(Method::POST, "/requests", Some(body.clone()))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    let field = &out["fields"][0];
    assert_eq!(field["field"], "account_id", "{out}");
    let message = field["message"].as_str().unwrap();
    assert!(
        message.contains("is disabled (being decommissioned)"),
        "{message}"
    );
    let form = alice
        .post_form(
            "/requests",
            &[
                ("blueprint", "network"),
                ("account_id", DEV),
                ("region", "eu-west-2"),
                ("name", "refused"),
            ],
        )
        .await;
    assert_eq!(form.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = form.text().await.unwrap();
    let shown = extract(&html, "id=\"account_id-error\"", "</p>").unwrap();
    assert!(shown.contains("is disabled"), "{shown}");
    let (code, _) = dave
        .api(Method::POST, &format!("/accounts/{DEV}/enable"), None)
        .await;
    assert_eq!(code, StatusCode::OK);

    // An account whose last check failed.
    let broken = fresh_account();
    register(
        &dave,
        &broken,
        &format!("arn:aws:iam::{broken}:role/stackgate-deploy"),
    )
    .await;
    assert_eq!(check(&dave, &broken).await["ok"], false);
    let body = serde_json::json!({
        "blueprint": "network", "account_id": broken, "region": "eu-west-2", "name": "refused"
    });
    let (code, out) = alice.api(Method::POST, "/requests", Some(body)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["fields"][0]["field"], "account_id", "{out}");
    let message = out["fields"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("last access check failed") && message.contains("does not exist"),
        "{message}"
    );
    assert_eq!(request_count(&alice).await, 0, "no request was stored");
    app.stop().await;
}

/// The demo registry without `account`'s table, in a file of its own; returns its path.
fn registry_without(account: &str) -> String {
    let demo = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let blocks: Vec<&str> = demo.split("[[accounts]]").collect();
    let kept: Vec<&str> = blocks
        .iter()
        .copied()
        .filter(|b| !b.contains(&format!("id = \"{account}\"")))
        .collect();
    assert_eq!(
        kept.len() + 1,
        blocks.len(),
        "the demo registry names {account} once"
    );
    let dir = std::env::temp_dir().join("stackgate-it");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("registry-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, kept.join("[[accounts]]")).unwrap();
    path.display().to_string()
}

async fn account(app: &TestApp, id: &str) -> stackgate::accounts::Account {
    stackgate::accounts::store::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_disables_an_account_it_stops_naming_and_keeps_admin_edits() {
    use stackgate::accounts::{ManagedBy, Status};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let added = fresh_account();
    register(
        &dave,
        &added,
        &format!("arn:aws:iam::{added}:role/stackgate-deploy"),
    )
    .await;
    // The file sets the dev account's name but not the management account's teams.
    let dev = detail(&dave, DEV).await;
    let body = serde_json::json!({
        "name": "renamed-dev", "purpose": "dev", "deploy_role_arn": dev["deploy_role_arn"],
        "regions": dev["regions"], "teams": dev["teams"],
    });
    assert_eq!(
        dave.api(Method::PUT, &format!("/accounts/{DEV}"), Some(body))
            .await
            .0,
        StatusCode::OK
    );
    let mgmt = detail(&dave, "100000000001").await;
    let body = serde_json::json!({
        "name": "management", "purpose": "management", "deploy_role_arn": mgmt["deploy_role_arn"],
        "regions": mgmt["regions"], "teams": ["lending"], "settings": mgmt["settings"],
    });
    assert_eq!(
        dave.api(Method::PUT, "/accounts/100000000001", Some(body))
            .await
            .0,
        StatusCode::OK
    );

    let url = app.stop_keeping_database().await;
    let registry = registry_without(PROD);
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_DATABASE_URL", &url),
            ("STACKGATE_CONFIG", &registry),
        ],
    )
    .await;
    let _ = std::fs::remove_file(&registry);
    let prod = account(&app, PROD).await;
    assert_eq!(prod.status, Status::Disabled);
    assert_eq!(
        prod.status_reason.as_deref(),
        Some(stackgate::accounts::store::REMOVED_FROM_CONFIG)
    );
    let kept = account(&app, &added).await;
    assert_eq!(
        (kept.status, kept.managed_by),
        (Status::Active, ManagedBy::Admin)
    );
    assert_eq!(
        account(&app, DEV).await.name,
        "dev",
        "the file wins for what it sets"
    );
    assert_eq!(
        account(&app, "100000000001").await.teams,
        vec!["lending"],
        "an edit the file does not touch stays"
    );
    let records = stackgate::audit::store::for_object(&app.state.db, "account", PROD)
        .await
        .unwrap();
    let disabled: Vec<_> = records
        .iter()
        .filter(|r| r.action == "account.disabled")
        .collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].actor_name, "config");
    assert_eq!(disabled[0].detail["after"]["status"], "disabled");

    // Named again, it is enabled again.
    let url = app.stop_keeping_database().await;
    let app = TestApp::spawn_with(Backend::Sqlite, &[("STACKGATE_DATABASE_URL", &url)]).await;
    assert_eq!(account(&app, PROD).await.status, Status::Active);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_action_writes_one_audit_record_with_before_and_after() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let id = fresh_account();
    let role = format!("arn:aws:iam::{id}:role/stackgate-deploy");
    let records = |app: &TestApp, id: String| {
        let db = app.state.db.clone();
        async move {
            stackgate::audit::store::for_object(&db, "account", &id)
                .await
                .unwrap()
        }
    };
    register(&dave, &id, &role).await;
    let edit = serde_json::json!({
        "name": "renamed", "purpose": "test", "deploy_role_arn": role,
        "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let steps: Vec<(Method, String, Option<serde_json::Value>, &str)> = vec![
        (
            Method::PUT,
            format!("/accounts/{id}"),
            Some(edit),
            "account.updated",
        ),
        (
            Method::POST,
            format!("/accounts/{id}/disable"),
            None,
            "account.disabled",
        ),
        (
            Method::POST,
            format!("/accounts/{id}/enable"),
            None,
            "account.enabled",
        ),
        (
            Method::POST,
            format!("/accounts/{id}/rotate-external-id"),
            None,
            "account.external_id_rotated",
        ),
        (
            Method::POST,
            format!("/accounts/{id}/check"),
            None,
            "account.access_checked",
        ),
    ];
    let mut seen = records(&app, id.clone()).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].action, "account.registered");
    assert!(seen[0].detail.get("before").is_some() && seen[0].detail["after"]["name"].is_string());
    for (method, path, body, action) in steps {
        let (code, out) = dave.api(method, &path, body).await;
        assert_eq!(code, StatusCode::OK, "{path}: {out}");
        let now = records(&app, id.clone()).await;
        assert_eq!(now.len(), seen.len() + 1, "{action}: exactly one record");
        let last = now.last().unwrap();
        assert_eq!(last.action, action);
        assert!(last.actor_id.is_some(), "{action} names the admin");
        assert!(
            last.detail.get("before").is_some() && last.detail.get("after").is_some(),
            "{action}: {}",
            last.detail
        );
        assert_ne!(last.detail["before"], last.detail["after"], "{action}");
        seen = now;
    }
    // A page form writes its one record too.
    let resp = dave
        .post_form(
            &format!("/admin/accounts/{id}/disable"),
            &[("reason", "paused")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let now = records(&app, id.clone()).await;
    assert_eq!(now.len(), seen.len() + 1);
    assert_eq!(now.last().unwrap().detail["after"]["reason"], "paused");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_reach_the_account_registry() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let before = account(&app, DEV).await;
    let audit_before = audit_log(&app.state.db).await.len();
    let body = serde_json::json!({
        "id": "799999999999", "name": "x", "purpose": "dev",
        "deploy_role_arn": "arn:aws:iam::799999999999:role/stackgate-deploy",
        "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let pages_get = [
        "/admin/accounts".to_string(),
        "/admin/accounts/new".to_string(),
        format!("/admin/accounts/{DEV}"),
        format!("/admin/accounts/{DEV}/edit"),
    ];
    let pages_post = [
        "/admin/accounts".to_string(),
        format!("/admin/accounts/{DEV}/edit"),
        format!("/admin/accounts/{DEV}/disable"),
        format!("/admin/accounts/{DEV}/enable"),
        format!("/admin/accounts/{DEV}/rotate-external-id"),
        format!("/admin/accounts/{DEV}/check"),
    ];
    let api: Vec<(Method, String)> = vec![
        (Method::GET, "/accounts".into()),
        (Method::POST, "/accounts".into()),
        (Method::GET, format!("/accounts/{DEV}")),
        (Method::PUT, format!("/accounts/{DEV}")),
        (Method::POST, format!("/accounts/{DEV}/disable")),
        (Method::POST, format!("/accounts/{DEV}/enable")),
        (Method::POST, format!("/accounts/{DEV}/rotate-external-id")),
        (Method::POST, format!("/accounts/{DEV}/check")),
    ];
    let form = [
        ("id", "799999999999"),
        ("name", "x"),
        ("purpose", "dev"),
        (
            "deploy_role_arn",
            "arn:aws:iam::799999999999:role/stackgate-deploy",
        ),
        ("regions", "eu-west-2"),
    ];
    for who in ["alice", "bob", "erin"] {
        let user = app.login(who).await;
        let (_, home) = page(&user, "/").await;
        assert!(!home.contains(">Admin</a>"), "{who} sees no Admin entry");
        for path in &pages_get {
            assert_eq!(
                user.get(path).await.status(),
                StatusCode::FORBIDDEN,
                "{who} GET {path}"
            );
        }
        for path in &pages_post {
            let status = user.post_form(path, &form).await.status();
            assert_eq!(status, StatusCode::FORBIDDEN, "{who} POST {path}");
        }
        for (method, path) in &api {
            let (code, out) = user.api(method.clone(), path, Some(body.clone())).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{who} {method} {path}: {out}");
        }
    }
    let anonymous = crate::oidc::browser();
    for path in &pages_get {
        let resp = anonymous
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "anonymous GET {path}");
        assert!(
            resp.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login")
        );
    }
    for path in &pages_post {
        let resp = anonymous
            .post(format!("{}{path}", app.base))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(
            [StatusCode::FORBIDDEN, StatusCode::SEE_OTHER].contains(&resp.status()),
            "anonymous POST {path}: {}",
            resp.status()
        );
    }
    for (method, path) in &api {
        let resp = anonymous
            .request(method.clone(), format!("{}/api/v1{path}", app.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&resp.status()),
            "anonymous {method} {path}: {}",
            resp.status()
        );
    }
    let after = account(&app, DEV).await;
    assert_eq!(
        (
            after.external_id,
            after.status,
            after.last_check,
            after.name
        ),
        (
            before.external_id,
            before.status,
            before.last_check,
            before.name
        )
    );
    assert!(
        stackgate::accounts::store::get(&app.state.db, "799999999999")
            .await
            .unwrap()
            .is_none()
    );
    let records = audit_log(&app.state.db).await;
    assert!(
        records[audit_before..]
            .iter()
            .all(|r| !r.action.starts_with("account.")),
        "no account change was recorded"
    );
    app.stop().await;
}

async fn bad_input_is_refused_naming_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let dave = app.login("dave").await;
    let good = serde_json::json!({
        "id": "712345678901", "name": "sandbox", "purpose": "dev",
        "deploy_role_arn": "arn:aws:iam::712345678901:role/stackgate-deploy",
        "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let with = |key: &str, value: serde_json::Value| {
        let mut b = good.clone();
        b[key] = value;
        b
    };
    let cases = [
        (with("id", "71234567890".into()), "id"),
        (with("id", "7123456789ab".into()), "id"),
        (
            with(
                "deploy_role_arn",
                "arn:aws:iam::999999999999:role/stackgate-deploy".into(),
            ),
            "deploy_role_arn",
        ),
        (
            with("deploy_role_arn", "arn:aws:s3:::stackgate-bucket".into()),
            "deploy_role_arn",
        ),
        (
            with(
                "cfn_execution_role_arn",
                "arn:aws:iam::999999999999:role/x".into(),
            ),
            "cfn_execution_role_arn",
        ),
        (with("teams", serde_json::json!(["ghosts"])), "teams"),
        (with("regions", serde_json::json!(["eu-west-9"])), "regions"),
        (with("regions", serde_json::json!([])), "regions"),
        (with("name", "".into()), "name"),
        (with("purpose", "core".into()), "purpose"),
    ];
    let audit_before = audit_log(&app.state.db).await.len();
    for (body, field) in cases {
        let (code, out) = dave
            .api(Method::POST, "/accounts", Some(body.clone()))
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {out}");
        let named: Vec<&str> = out["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(named, [field], "{body}: {out}");
    }
    // An unknown field (an ExternalId typed in) is refused too.
    let (code, _) = dave
        .api(
            Method::POST,
            "/accounts",
            Some(with("external_id", "mine".into())),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    // The form says it next to the field.
    let resp = dave
        .post_form(
            "/admin/accounts",
            &[
                ("id", "12345"),
                ("name", "sandbox"),
                ("purpose", "dev"),
                (
                    "deploy_role_arn",
                    "arn:aws:iam::712345678901:role/stackgate-deploy",
                ),
                ("regions", "eu-west-2"),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    let shown = extract(&html, "id=\"id-error\">", "</p>").unwrap();
    assert!(shown.contains("12 digits"), "{shown}");
    // An edit with another account's role leaves the account as it was.
    let dev = account(&app, DEV).await;
    let edit = serde_json::json!({
        "name": "dev", "purpose": "dev",
        "deploy_role_arn": "arn:aws:iam::200000000003:role/stackgate-deploy",
        "regions": ["eu-west-2"], "teams": ["payments"],
    });
    let (code, out) = dave
        .api(Method::PUT, &format!("/accounts/{DEV}"), Some(edit))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["fields"][0]["field"], "deploy_role_arn");
    assert!(
        out["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("200000000003"),
        "{out}"
    );
    assert_eq!(account(&app, DEV).await.spec(), dev.spec());
    assert_eq!(
        stackgate::accounts::store::list(&app.state.db)
            .await
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        audit_log(&app.state.db).await.len(),
        audit_before,
        "nothing was recorded"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_account_input_is_refused_naming_the_field_on_sqlite() {
    bad_input_is_refused_naming_the_field(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_account_input_is_refused_naming_the_field_on_postgres() {
    bad_input_is_refused_naming_the_field(Backend::Postgres).await;
}
