//! Blueprint versions (issue 9): the bundled folders imported once, a draft uploaded, checked,
//! published and requested, the request re-rendered byte for byte from its stored version later,
//! the compatibility promise of minor versions, deprecation and retirement, each kind of bad
//! upload refused with nothing stored, the audit records, and every admin route walked by every
//! other role.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use stackgate::catalog::{AccountRef, PortalRef, RenderContext};

use crate::app::{Backend, TestApp, UserClient};
use crate::oidc::browser;
use crate::support::repo;

const DEV: &str = "200000000001";

fn fixture(slug: &str, file: &str) -> String {
    std::fs::read_to_string(format!("{}/{slug}/{file}", repo("tests/fixtures/catalog"))).unwrap()
}

/// The fixture network's manifest under another version number.
fn network_manifest(version: &str) -> String {
    fixture("network", "blueprint.toml")
        .replace("version = \"1.1.0\"", &format!("version = \"{version}\""))
}

fn network_template() -> String {
    fixture("network", "template.json.j2")
}

/// The network without its `app_port` parameter (the template uses 8080 instead).
fn without_app_port(version: &str) -> (String, String) {
    let manifest = network_manifest(version);
    let start = manifest
        .find("[[parameters]]\nname = \"app_port\"")
        .unwrap();
    let end =
        start + manifest[start..].find("default = 8080\n").unwrap() + "default = 8080\n".len();
    let manifest =
        format!("{}{}", &manifest[..start], &manifest[end..]).replace("app_port = 8443\n", "");
    (
        manifest,
        network_template().replace("params.app_port", "8080"),
    )
}

async fn upload(
    dave: &UserClient,
    slug: &str,
    manifest: &str,
    template: &str,
) -> (StatusCode, Value) {
    dave.api(
        Method::POST,
        &format!("/blueprints/{slug}/versions"),
        Some(json!({ "manifest": manifest, "template": template })),
    )
    .await
}

/// Posts the upload form as a browser does: `multipart/form-data` with the two files (and the
/// anti-forgery token when `csrf` is given).
async fn post_files(
    user: &UserClient,
    path: &str,
    (manifest, template): (&str, &str),
    csrf: Option<&str>,
) -> reqwest::Response {
    let boundary = "----stackgate-test-boundary-7f3a";
    let mut body = String::new();
    if let Some(token) = csrf {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n"
        ));
    }
    for (name, file, text) in [
        ("manifest", "blueprint.toml", manifest),
        ("template", "template.json.j2", template),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n{text}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    user.client
        .post(format!("{}{path}", user.base))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn act(dave: &UserClient, slug: &str, version: &str, action: &str) -> (StatusCode, Value) {
    dave.api(
        Method::POST,
        &format!("/blueprints/{slug}/versions/{version}/{action}"),
        None,
    )
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

async fn versions_stored(app: &TestApp) -> i64 {
    count(app, "select count(*) from blueprint_versions").await
}

async fn audit_records(app: &TestApp) -> i64 {
    count(
        app,
        "select count(*) from audit_log where object_type = 'blueprint_version'",
    )
    .await
}

async fn state_of(app: &TestApp, slug: &str, version: &str) -> String {
    sqlx::query("select state from blueprint_versions where slug = $1 and version = $2")
        .bind(slug.to_string())
        .bind(version.to_string())
        .fetch_one(app.state.db.pool())
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

fn fixture_folders() -> i64 {
    std::fs::read_dir(repo("tests/fixtures/catalog"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().join("blueprint.toml").is_file())
        .count() as i64
}

async fn bundled_import_is_idempotent_and_a_changed_folder_stops_the_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let folders = fixture_folders();
    assert_eq!(
        versions_stored(&app).await,
        folders,
        "one version per folder"
    );
    assert_eq!(
        audit_records(&app).await,
        folders,
        "one import record per folder"
    );
    assert_eq!(state_of(&app, "network", "1.1.0").await, "published");
    let url = app.stop_keeping_database().await;

    let again = TestApp::spawn_with(backend, &[("STACKGATE_DATABASE_URL", &url)]).await;
    assert_eq!(
        versions_stored(&again).await,
        folders,
        "a restart imports nothing"
    );
    assert_eq!(audit_records(&again).await, folders, "and records nothing");
    let url = again.stop_keeping_database().await;

    // The same version number with other contents: the start is refused, naming the folder.
    let dir = std::env::temp_dir().join(format!("sg-catalog-{}", uuid::Uuid::new_v4().simple()));
    let network = dir.join("network");
    std::fs::create_dir_all(&network).unwrap();
    std::fs::write(network.join("blueprint.toml"), network_manifest("1.1.0")).unwrap();
    std::fs::write(network.join("template.json.j2"), network_template() + "\n").unwrap();
    let config = crate::support::test_config(
        vec![
            ("STACKGATE_CONFIG", repo("config/demo.toml")),
            ("STACKGATE_DATABASE_URL", url.clone()),
            ("STACKGATE_PUBLIC_URL", "http://127.0.0.1:1".into()),
            ("STACKGATE_OIDC_ISSUER", crate::oidc::issuer()),
            ("STACKGATE_OIDC_CLIENT_ID", crate::oidc::CLIENT_ID.into()),
            (
                "STACKGATE_OIDC_CLIENT_SECRET",
                crate::oidc::CLIENT_SECRET.into(),
            ),
            ("STACKGATE_CATALOG_DIR", dir.display().to_string()),
            ("STACKGATE_RULES_DIR", repo("cloudformation/rules")),
        ],
        &[],
    );
    let refused = match stackgate::build_state(config).await {
        Ok(_) => panic!("a changed folder under a stored version must stop the start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        refused.contains(&network.display().to_string()),
        "{refused}"
    );
    assert!(
        refused.contains("1.1.0") && refused.contains("raise `version`"),
        "{refused}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Clean up the kept database through a last start on it.
    TestApp::spawn_with(backend, &[("STACKGATE_DATABASE_URL", &url)])
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn bundled_import_is_idempotent_and_a_changed_folder_stops_the_start_on_sqlite() {
    bundled_import_is_idempotent_and_a_changed_folder_stops_the_start(Backend::Sqlite).await;
}

#[tokio::test]
async fn bundled_import_is_idempotent_and_a_changed_folder_stops_the_start_on_postgres() {
    bundled_import_is_idempotent_and_a_changed_folder_stops_the_start(Backend::Postgres).await;
}

/// Renders a request again from the stored version it names, with the context the portal gave
/// it (a new stack: the request's own id is its tag).
async fn rerender(app: &TestApp, request: &Value) -> String {
    let slug = request["blueprint_slug"].as_str().unwrap();
    let version = request["blueprint_version"].as_str().unwrap();
    let (bp, _) = app.state.library.get(slug, version).await.unwrap().unwrap();
    let account = stackgate::accounts::store::get(&app.state.db, DEV)
        .await
        .unwrap()
        .unwrap();
    let team = request["team"].as_str().unwrap();
    let mut ctx = RenderContext::new(
        account.env_class,
        "eu-west-2",
        request["env_name"].as_str().unwrap(),
        team,
    );
    ctx.settings = account.settings.clone();
    ctx.cost_centre = app.state.config.cost_centre(team);
    ctx.owner = "alice@example.com".into();
    ctx.request_id = request["id"].as_str().unwrap().into();
    ctx.account = AccountRef {
        id: DEV.into(),
        name: account.name.clone(),
        purpose: account.env_class.to_string(),
        external_id: account.external_id.clone(),
    };
    if let Some(arn) = &app.state.config.portal_role_arn {
        ctx.portal = PortalRef {
            role_arn: arn.clone(),
            account_id: arn.split(':').nth(4).unwrap().into(),
        };
    }
    let raw: BTreeMap<String, String> = request["params"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_string),
            )
        })
        .collect();
    bp.render(&ctx, &raw).unwrap().digest
}

async fn a_draft_is_published_requested_and_renders_the_same_later(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (dave, alice, bob) = (
        app.login("dave").await,
        app.login("alice").await,
        app.login("bob").await,
    );

    let (code, draft) = upload(
        &dave,
        "network",
        &network_manifest("1.2.0"),
        &network_template(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{draft}");
    assert_eq!(draft["state"], "draft");
    let name = format!("bv{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let body = |version: Option<&str>| {
        json!({ "blueprint": "network", "blueprint_version": version, "account_id": DEV,
                "region": "eu-west-2", "name": name })
    };
    // A draft cannot be requested.
    let (code, refused) = alice
        .api(Method::POST, "/requests", Some(body(Some("1.2.0"))))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused.to_string().contains("blueprint") && refused.to_string().contains("draft"),
        "{refused}"
    );

    let (code, published) = act(&dave, "network", "1.2.0", "publish").await;
    assert_eq!(code, StatusCode::OK, "{published}");
    assert_eq!(
        (published["before"].as_str(), published["state"].as_str()),
        (Some("draft"), Some("published"))
    );
    // The catalog now offers 1.2.0, and a request naming no version gets it.
    let (_, catalog) = alice.api(Method::GET, "/blueprints", None).await;
    let network = catalog["blueprints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["slug"] == "network")
        .unwrap();
    assert_eq!(network["version"], "1.2.0");
    let (code, created) = alice.api(Method::POST, "/requests", Some(body(None))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["blueprint_version"], "1.2.0");
    let id = created["id"].as_str().unwrap().to_string();
    let digest = created["template_digest"].as_str().unwrap().to_string();
    assert_eq!(
        rerender(&app, &created).await,
        digest,
        "the stored version renders the same template"
    );

    // Approved and deployed; then a newer version is published: 1.2.0 still renders the same.
    let arn = bob.review_arn(&id).await;
    let (code, outcome) = bob
        .api(
            Method::POST,
            &format!("/requests/{id}/approve"),
            Some(json!({"comment": "ok", "change_set_arn": arn})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{outcome}");
    alice
        .wait_for_status(&id, &["deployed"], Duration::from_secs(90))
        .await;
    let (code, _) = upload(
        &dave,
        "network",
        &network_manifest("1.3.0"),
        &network_template(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!(
        act(&dave, "network", "1.3.0", "publish").await.0,
        StatusCode::OK
    );
    assert_eq!(
        rerender(&app, &created).await,
        digest,
        "re-rendered byte for byte later"
    );

    // Deprecated: no new environment on it, but the existing one may still be updated on it.
    let (code, dep) = act(&dave, "network", "1.2.0", "deprecate").await;
    assert_eq!(code, StatusCode::OK, "{dep}");
    let other = json!({ "blueprint": "network", "blueprint_version": "1.2.0", "account_id": DEV,
                        "region": "eu-west-2", "name": format!("{name}x") });
    let (code, refused) = alice.api(Method::POST, "/requests", Some(other)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.to_string().contains("deprecated"), "{refused}");
    let (code, update) = alice
        .api(Method::POST, "/requests", Some(body(Some("1.2.0"))))
        .await;
    assert_eq!(
        code,
        StatusCode::CREATED,
        "an update of the environment on 1.2.0: {update}"
    );

    // Retiring is refused while the environment is on it, and changes nothing.
    let before = audit_records(&app).await;
    let (code, refused) = act(&dave, "network", "1.2.0", "retire").await;
    assert_eq!(code, StatusCode::CONFLICT, "{refused}");
    assert!(refused.to_string().contains("deployed stack"), "{refused}");
    assert_eq!(state_of(&app, "network", "1.2.0").await, "deprecated");
    assert_eq!(
        audit_records(&app).await,
        before,
        "a refusal records no change"
    );
    // A deprecated version nothing is on retires.
    assert_eq!(
        act(&dave, "network", "1.3.0", "deprecate").await.0,
        StatusCode::OK
    );
    assert_eq!(
        act(&dave, "network", "1.3.0", "retire").await.0,
        StatusCode::OK
    );
    let (code, refused) = alice
        .api(
            Method::POST,
            "/requests",
            Some(
                json!({ "blueprint": "network", "blueprint_version": "1.3.0",
            "account_id": DEV, "region": "eu-west-2", "name": format!("{name}y") }),
            ),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused.to_string().contains("retired"), "{refused}");

    // One audit record per action, with before and after.
    let records =
        stackgate::audit::store::for_object(&app.state.db, "blueprint_version", "network@1.2.0")
            .await
            .unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "blueprint.version_uploaded",
            "blueprint.version_published",
            "blueprint.version_deprecated"
        ]
    );
    assert_eq!(records[1].detail["before"]["state"], "draft");
    assert_eq!(records[1].detail["after"]["state"], "published");
    assert!(
        records[1].actor_name.contains("Dave"),
        "{}",
        records[1].actor_name
    );
    assert!(
        records.iter().all(|r| r.actor_id.is_some()),
        "admins are the actors"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_draft_is_published_requested_and_renders_the_same_later_on_sqlite() {
    a_draft_is_published_requested_and_renders_the_same_later(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_draft_is_published_requested_and_renders_the_same_later_on_postgres() {
    a_draft_is_published_requested_and_renders_the_same_later(Backend::Postgres).await;
}

#[tokio::test]
async fn a_minor_version_removing_a_parameter_is_refused_naming_it_and_a_major_one_accepted() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let stored = versions_stored(&app).await;
    let (manifest, template) = without_app_port("1.2.0");
    let (code, refused) = upload(&dave, "network", &manifest, &template).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let text = refused.to_string();
    assert!(
        text.contains("'app_port' is removed") && text.contains("new major version (2.0.0)"),
        "{text}"
    );
    assert_eq!(versions_stored(&app).await, stored, "nothing stored");
    // Removing an output breaks a minor version's promise too.
    let no_output: String = network_template()
        .lines()
        .filter(|l| !l.trim_start().starts_with("\"AppPort\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let (code, refused) = upload(&dave, "network", &network_manifest("1.2.0"), &no_output).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused.to_string().contains("output 'AppPort' is removed"),
        "{refused}"
    );
    // So does a patch version that adds anything.
    let (manifest, template) = without_app_port("1.1.1");
    let (code, refused) = upload(&dave, "network", &manifest, &template).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        refused.to_string().contains("a patch version (1.1.1)"),
        "{refused}"
    );
    assert_eq!(versions_stored(&app).await, stored, "nothing stored");

    let (manifest, template) = without_app_port("2.0.0");
    let (code, accepted) = upload(&dave, "network", &manifest, &template).await;
    assert_eq!(code, StatusCode::CREATED, "{accepted}");
    assert_eq!(accepted["version"], "2.0.0");

    // The page of the new version shows its parameters and the diff against 1.1.0.
    let page = dave.get("/admin/blueprints/network/versions/2.0.0").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Changes since 1.1.0"),
        "the diff is against the previous version"
    );
    assert!(
        html.contains("-app_port: integer"),
        "the parameter diff shows app_port removed"
    );
    assert!(html.contains("action=\"/admin/blueprints/network/versions/2.0.0/publish\""));
    // Published from the page's form.
    let done = dave
        .post_form("/admin/blueprints/network/versions/2.0.0/publish", &[])
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(state_of(&app, "network", "2.0.0").await, "published");
    app.stop().await;
}

/// A bad upload: its case, slug, manifest, template, the status and what the answer must say.
type BadUpload = (
    &'static str,
    &'static str,
    String,
    String,
    StatusCode,
    Vec<&'static str>,
);

#[tokio::test]
async fn bad_uploads_are_refused_naming_the_problem_and_nothing_is_stored() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let (stored, records) = (versions_stored(&app).await, audit_records(&app).await);
    let policy = fixture("policy-violation", "blueprint.toml");
    let policy = {
        let start = policy.find("\nversion = \"").unwrap() + 1;
        let end = start + policy[start..].find('\n').unwrap();
        format!("{}version = \"9.0.0\"{}", &policy[..start], &policy[end..])
    };
    let cases: Vec<BadUpload> = vec![
        (
            "not TOML",
            "network",
            "slug = \"network\"\nversion = \n".into(),
            network_template(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["blueprint.toml", "line 2"],
        ),
        (
            "does not render",
            "network",
            network_manifest("1.2.0"),
            format!("{{{{ params.no_such_parameter }}}}{}", network_template()),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["template.json.j2", "class dev"],
        ),
        (
            "fails policy",
            "policy-violation",
            policy,
            fixture("policy-violation", "template.json.j2"),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["policy rule "],
        ),
        (
            "exists already",
            "network",
            network_manifest("1.1.0"),
            network_template(),
            StatusCode::CONFLICT,
            vec!["1.1.0 exists already"],
        ),
        (
            "not semver",
            "network",
            network_manifest("1.2"),
            network_template(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["MAJOR.MINOR.PATCH"],
        ),
        (
            "another slug",
            "storage",
            network_manifest("1.2.0"),
            network_template(),
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["slug 'network'"],
        ),
    ];
    for (case, slug, manifest, template, status, needles) in cases {
        let (code, body) = upload(&dave, slug, &manifest, &template).await;
        assert_eq!(code, status, "{case}: {body}");
        for n in needles {
            assert!(
                body.to_string().contains(n),
                "{case}: expected '{n}' in {body}"
            );
        }
    }
    // The page's form says the same and keeps what was typed.
    let page = post_files(
        &dave,
        "/admin/blueprints/network",
        ("slug = \"network\"\nversion = \n", "{}"),
        Some(&dave.csrf),
    )
    .await;
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("The version was not stored") && html.contains("line 2"),
        "{html}"
    );
    // Without the anti-forgery token the form is refused before anything is read.
    let forged = post_files(
        &dave,
        "/admin/blueprints/network",
        (&network_manifest("1.5.0"), &network_template()),
        None,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(versions_stored(&app).await, stored, "nothing stored");
    assert_eq!(audit_records(&app).await, records, "nothing recorded");
    // The same files with the token are stored as a draft, and the page shows it.
    let done = post_files(
        &dave,
        "/admin/blueprints/network",
        (&network_manifest("1.5.0"), &network_template()),
        Some(&dave.csrf),
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        done.headers()["location"],
        "/admin/blueprints/network/versions/1.5.0"
    );
    assert_eq!(state_of(&app, "network", "1.5.0").await, "draft");
    app.stop().await;
}

#[tokio::test]
async fn only_admins_reach_the_blueprint_version_routes_and_others_change_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let (code, _) = upload(
        &dave,
        "network",
        &network_manifest("1.2.0"),
        &network_template(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED);
    let (stored, records) = (versions_stored(&app).await, audit_records(&app).await);
    let pages = [
        "/admin/blueprints",
        "/admin/blueprints/network",
        "/admin/blueprints/network/versions/1.2.0",
    ];
    let form_posts = [
        "/admin/blueprints/network",
        "/admin/blueprints/network/versions/1.2.0/publish",
        "/admin/blueprints/network/versions/1.1.0/deprecate",
    ];
    let api_posts = [
        "/blueprints/network/versions",
        "/blueprints/network/versions/1.2.0/publish",
        "/blueprints/network/versions/1.1.0/deprecate",
        "/blueprints/network/versions/1.1.0/retire",
    ];
    let upload_body =
        json!({ "manifest": network_manifest("1.4.0"), "template": network_template() });
    for login in ["alice", "bob", "erin"] {
        let user = app.login(login).await;
        for p in pages {
            assert_eq!(
                user.get(p).await.status(),
                StatusCode::FORBIDDEN,
                "{login} GET {p}"
            );
        }
        for p in form_posts {
            let r = user
                .post_form(
                    p,
                    &[
                        ("manifest", upload_body["manifest"].as_str().unwrap()),
                        ("template", "{}"),
                    ],
                )
                .await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{login} POST {p}");
        }
        let manifest = network_manifest("1.4.0");
        let template = network_template();
        let r = post_files(
            &user,
            "/admin/blueprints/network",
            (&manifest, &template),
            Some(&user.csrf),
        )
        .await;
        assert_eq!(
            r.status(),
            StatusCode::FORBIDDEN,
            "{login} uploads through the form"
        );
        for p in api_posts {
            let (code, _) = user.api(Method::POST, p, Some(upload_body.clone())).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{login} POST /api/v1{p}");
        }
        // The list is readable by every signed-in user, without drafts.
        let (code, list) = user
            .api(Method::GET, "/blueprints/network/versions", None)
            .await;
        assert_eq!(code, StatusCode::OK, "{login}");
        assert!(
            list["versions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["state"] != "draft"),
            "{list}"
        );
    }
    let anonymous = browser();
    for p in pages {
        let r = anonymous
            .get(format!("{}{p}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "anonymous GET {p}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login")
        );
    }
    for p in form_posts {
        let r = anonymous
            .post(format!("{}{p}", app.base))
            .form(&[("manifest", "x")])
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                r.status(),
                StatusCode::FORBIDDEN | StatusCode::SEE_OTHER | StatusCode::UNAUTHORIZED
            ),
            "anonymous POST {p}: {}",
            r.status()
        );
    }
    for p in api_posts
        .iter()
        .chain(["/blueprints/network/versions"].iter())
    {
        let r = anonymous
            .get(format!("{}/api/v1{p}", app.base))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                r.status(),
                StatusCode::UNAUTHORIZED | StatusCode::METHOD_NOT_ALLOWED
            ),
            "anonymous /api/v1{p}: {}",
            r.status()
        );
        let r = anonymous
            .post(format!("{}/api/v1{p}", app.base))
            .json(&upload_body)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN),
            "anonymous POST /api/v1{p}: {}",
            r.status()
        );
    }
    assert_eq!(versions_stored(&app).await, stored, "nothing stored");
    assert_eq!(audit_records(&app).await, records, "nothing recorded");
    assert_eq!(state_of(&app, "network", "1.2.0").await, "draft");
    assert_eq!(state_of(&app, "network", "1.1.0").await, "published");
    // The admin sees the draft in the list, and the Admin entry in the nav.
    let (_, list) = dave
        .api(Method::GET, "/blueprints/network/versions", None)
        .await;
    assert!(
        list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["state"] == "draft"),
        "{list}"
    );
    let home = dave.get("/").await.text().await.unwrap();
    assert!(home.contains("href=\"/admin\""));
    let alice_home = app
        .login("alice")
        .await
        .get("/")
        .await
        .text()
        .await
        .unwrap();
    assert!(!alice_home.contains("href=\"/admin\""));
    app.stop().await;
}
