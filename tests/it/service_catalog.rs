//! Publishing the catalog to AWS Service Catalog against the emulator: the portfolio, one product
//! per blueprint with one version each, shares with the registry's active accounts, nothing new
//! on a second publish, a new version through the command line, the admin page, and the
//! authorization walk. Each test uses its own portfolio (the emulator is shared).

use std::collections::BTreeMap;
use std::process::Command;

use reqwest::{Method, StatusCode};

use crate::app::{Backend, TestApp};
use crate::support::{audit_log, harness_env, repo};

const REGION: &str = "eu-west-2";
const DEV: &str = "200000000001";

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn shared_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(harness_env("STACKGATE_TEST_AWS_ENDPOINT"))
        .region(aws_config::Region::new(REGION))
        .load()
        .await
}

async fn s3() -> aws_sdk_s3::Client {
    let shared = shared_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(true)
            .build(),
    )
}

async fn sc() -> aws_sdk_servicecatalog::Client {
    aws_sdk_servicecatalog::Client::new(&shared_config().await)
}

/// A new bucket for the templates.
async fn bucket() -> String {
    let name = unique("sg-sc");
    s3().await
        .create_bucket()
        .bucket(&name)
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    name
}

/// Products (by name) with their versions (name, id, guidance), and the shares, read through
/// Service Catalog itself.
async fn listing(
    portfolio: &str,
) -> (BTreeMap<String, Vec<(String, String, String)>>, Vec<String>) {
    let sc = sc().await;
    let found = sc
        .search_products_as_admin()
        .portfolio_id(portfolio)
        .send()
        .await
        .unwrap();
    let mut products = BTreeMap::new();
    for view in found.product_view_details() {
        let summary = view.product_view_summary().unwrap();
        let arts = sc
            .list_provisioning_artifacts()
            .product_id(summary.product_id().unwrap())
            .send()
            .await
            .unwrap();
        let versions = arts
            .provisioning_artifact_details()
            .iter()
            .map(|a| {
                (
                    a.name().unwrap().to_string(),
                    a.id().unwrap().to_string(),
                    a.guidance()
                        .map(|g| g.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        products.insert(summary.name().unwrap().to_string(), versions);
    }
    let access = sc
        .list_portfolio_access()
        .portfolio_id(portfolio)
        .send()
        .await
        .unwrap();
    let mut shares = access.account_ids().to_vec();
    shares.sort();
    (products, shares)
}

async fn portfolio_named(name: &str) -> Vec<String> {
    let out = sc().await.list_portfolios().page_size(20).send().await;
    let mut ids = Vec::new();
    let mut out = out.unwrap();
    loop {
        ids.extend(
            out.portfolio_details()
                .iter()
                .filter(|p| p.display_name() == Some(name))
                .map(|p| p.id().unwrap().to_string()),
        );
        let Some(token) = out.next_page_token().map(str::to_string) else {
            return ids;
        };
        out = sc()
            .await
            .list_portfolios()
            .page_token(token)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_creates_one_product_per_blueprint_shared_with_active_accounts_and_twice_changes_nothing()
 {
    let portfolio = unique("sg-test portfolio");
    let bucket = bucket().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_SERVICE_CATALOG_PORTFOLIO", &portfolio),
            ("STACKGATE_SERVICE_CATALOG_BUCKET", &bucket),
            ("STACKGATE_AWS_REGION", REGION),
        ],
    )
    .await;
    let dave = app.login("dave").await;
    let (code, _) = dave
        .api(Method::POST, &format!("/accounts/{DEV}/disable"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    let (_, accounts) = dave.api(Method::GET, "/accounts", None).await;
    let mut active: Vec<String> = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "active")
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    active.sort();
    assert!(!active.is_empty() && !active.contains(&DEV.to_string()));

    let (code, first) = dave
        .api(Method::POST, "/service-catalog/publish", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{first}");
    let id = first["portfolio_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("port-"), "{first}");
    assert_eq!(portfolio_named(&portfolio).await, vec![id.clone()]);
    // The fixture that fails the policy rules is not published: Service Catalog launches
    // without the portal's review.
    let blueprints: Vec<_> = app
        .state
        .catalog
        .list()
        .iter()
        .filter(|b| b.slug != "policy-violation")
        .collect();
    let skipped = first["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{first}");
    assert!(
        skipped[0]
            .as_str()
            .unwrap()
            .starts_with("policy-violation 0.0.1: fails the policy rules vpc_flow_logs_enabled"),
        "{first}"
    );
    let (products, shares) = listing(&id).await;
    assert_eq!(products.len(), blueprints.len(), "{products:?}");
    for bp in &blueprints {
        let versions = &products[&bp.name];
        assert_eq!(versions.len(), 1, "{}: {versions:?}", bp.slug);
        assert_eq!(
            (versions[0].0.as_str(), versions[0].2.as_str()),
            (bp.version.as_str(), "DEFAULT")
        );
        let detail = sc()
            .await
            .describe_provisioning_artifact()
            .product_id(
                first["products"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p["name"] == bp.name.as_str())
                    .and_then(|p| p["id"].as_str())
                    .unwrap(),
            )
            .provisioning_artifact_id(&versions[0].1)
            .send()
            .await
            .unwrap();
        let art = detail.provisioning_artifact_detail().unwrap();
        assert!(art.description().unwrap().contains(&bp.digest), "{art:?}");
        let url = &detail.info().unwrap()["TemplateUrl"];
        let prefix = format!("https://{bucket}.s3.{REGION}.amazonaws.com/");
        let key = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url}"));
        let object = s3()
            .await
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        let body = object.body.collect().await.unwrap().into_bytes();
        let template: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(template["Resources"].is_object(), "{}: {template}", bp.slug);
    }
    assert_eq!(shares, active);
    assert_eq!(first["shared_with"], serde_json::json!(active));
    assert_eq!(
        first["created"].as_array().unwrap().len(),
        1 + blueprints.len() + active.len(),
        "{first}"
    );

    // Again, through the API and then the page's form: nothing new.
    let (code, second) = dave
        .api(Method::POST, "/service-catalog/publish", None)
        .await;
    assert_eq!(code, StatusCode::OK, "{second}");
    assert_eq!(second["portfolio_id"], id.as_str());
    assert_eq!(second["created"], serde_json::json!([]), "{second}");
    assert_eq!(second["deprecated"], serde_json::json!([]), "{second}");
    assert_eq!(
        second["unchanged"].as_array().unwrap().len(),
        1 + blueprints.len() + active.len()
    );
    let resp = dave.post_form("/admin/service-catalog/publish", &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(listing(&id).await, (products.clone(), shares.clone()));
    assert_eq!(portfolio_named(&portfolio).await, vec![id.clone()]);

    let page = dave.get("/admin/service-catalog").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&id), "{html}");
    for bp in &blueprints {
        assert!(html.contains(&bp.name), "{}", bp.name);
    }
    assert!(
        html.contains("Not published: policy-violation 0.0.1"),
        "{html}"
    );

    let records: Vec<_> = audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "service_catalog.published")
        .collect();
    assert_eq!(records.len(), 3);
    assert!(
        records
            .iter()
            .all(|r| r.outcome == "success" && r.object_id == id)
    );
    let counts = serde_json::json!({
        "products": blueprints.len(), "versions": blueprints.len(), "shares": active.len(),
    });
    assert_eq!(
        records[0].detail["before"],
        serde_json::json!({"products": 0, "versions": 0, "shares": 0})
    );
    assert_eq!(records[0].detail["after"], counts);
    assert_eq!(records[1].detail["before"], counts);
    assert_eq!(records[1].detail["after"], counts);
    app.stop().await;
}

fn cli(catalog: &std::path::Path, db: &str, portfolio: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stackgate"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("STACKGATE_")) {
        c.env_remove(k);
    }
    c.arg("publish-catalog")
        .env("STACKGATE_CONFIG", repo("config/demo.toml"))
        .env("STACKGATE_DATABASE_URL", db)
        .env("STACKGATE_OIDC_ISSUER", "http://127.0.0.1:9")
        .env("STACKGATE_OIDC_CLIENT_ID", "c")
        .env("STACKGATE_OIDC_CLIENT_SECRET", "s")
        .env(
            "STACKGATE_AWS_ENDPOINT_URL",
            harness_env("STACKGATE_TEST_AWS_ENDPOINT"),
        )
        .env("STACKGATE_AWS_REGION", REGION)
        .env("STACKGATE_CATALOG_DIR", catalog)
        .env("STACKGATE_SERVICE_CATALOG_PORTFOLIO", portfolio);
    c
}

fn publish_cli(catalog: &std::path::Path, db: &str, portfolio: &str, bucket: &str) -> String {
    let out = cli(catalog, db, portfolio)
        .env("STACKGATE_SERVICE_CATALOG_BUCKET", bucket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if std::fs::metadata(entry.path()).unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_publishes_every_stored_version_adds_a_new_one_and_deprecates_a_deprecated_one() {
    let portfolio = unique("sg-test cli");
    let bucket = bucket().await;
    let dir = std::env::temp_dir().join(unique("stackgate-sc"));
    let catalog = dir.join("catalog");
    copy_dir(
        std::path::Path::new(&repo("tests/fixtures/catalog")),
        &catalog,
    );
    let db = format!("sqlite://{}", dir.join("portal.db").display());

    let first = publish_cli(&catalog, &db, &portfolio, &bucket);
    let id = first
        .lines()
        .next()
        .and_then(|l| l.split('\t').nth(2))
        .unwrap_or_else(|| panic!("{first}"))
        .to_string();
    assert!(
        first.contains(&format!("created\tportfolio {portfolio}")),
        "{first}"
    );
    assert!(
        first.contains("created\tproduct Settings note (test fixture) 0.0.1"),
        "{first}"
    );
    let again = publish_cli(&catalog, &db, &portfolio, &bucket);
    assert!(!again.contains("created\t"), "{again}");
    assert!(
        again.contains(&format!("portfolio\t{portfolio}\t{id}")),
        "{again}"
    );

    let manifest = catalog.join("settings-note/blueprint.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace("version = \"0.0.1\"", "version = \"0.0.2\""),
    )
    .unwrap();
    let bumped = publish_cli(&catalog, &db, &portfolio, &bucket);
    let created: Vec<&str> = bumped
        .lines()
        .filter(|l| l.starts_with("created\t"))
        .collect();
    assert_eq!(
        created,
        vec!["created\tversion Settings note (test fixture) 0.0.2"],
        "{bumped}"
    );
    // Both stored versions are published: both stay offered.
    assert!(!bumped.contains("deprecated\t"), "{bumped}");
    // An admin deprecates 0.0.1 (as /admin/blueprints does): the next publish deprecates it in
    // Service Catalog too, and deletes nothing.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    sqlx::query(
        "update blueprint_versions set state = 'deprecated' \
         where slug = 'settings-note' and version = '0.0.1'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let deprecated = publish_cli(&catalog, &db, &portfolio, &bucket);
    assert!(
        deprecated.contains("deprecated\tversion Settings note (test fixture) 0.0.1"),
        "{deprecated}"
    );
    assert!(!deprecated.contains("created\t"), "{deprecated}");
    let (products, _) = listing(&id).await;
    let versions: Vec<(&str, &str)> = products["Settings note (test fixture)"]
        .iter()
        .map(|(n, _, g)| (n.as_str(), g.as_str()))
        .collect();
    assert_eq!(
        versions,
        vec![("0.0.1", "DEPRECATED"), ("0.0.2", "DEFAULT")]
    );

    // Without a template bucket nothing can be published: exit 2, the setting named.
    let out = cli(&catalog, &db, &unique("sg-test nobucket"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("STACKGATE_SERVICE_CATALOG_BUCKET"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_admins_publish_and_others_change_nothing() {
    let portfolio = unique("sg-test authz");
    let bucket = bucket().await;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("STACKGATE_SERVICE_CATALOG_PORTFOLIO", &portfolio),
            ("STACKGATE_SERVICE_CATALOG_BUCKET", &bucket),
            ("STACKGATE_AWS_REGION", REGION),
        ],
    )
    .await;
    for who in ["alice", "bob", "erin"] {
        let user = app.login(who).await;
        assert_eq!(
            user.get("/admin/service-catalog").await.status(),
            StatusCode::FORBIDDEN,
            "{who}"
        );
        let status = user
            .post_form("/admin/service-catalog/publish", &[])
            .await
            .status();
        assert_eq!(status, StatusCode::FORBIDDEN, "{who}");
        let (code, out) = user
            .api(Method::POST, "/service-catalog/publish", None)
            .await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{who}: {out}");
    }
    let anonymous = crate::oidc::browser();
    let resp = anonymous
        .get(format!("{}/admin/service-catalog", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    for path in [
        "/admin/service-catalog/publish",
        "/api/v1/service-catalog/publish",
    ] {
        let resp = anonymous
            .post(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert!(
            [
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
                StatusCode::SEE_OTHER
            ]
            .contains(&resp.status()),
            "anonymous POST {path}: {}",
            resp.status()
        );
    }
    assert_eq!(portfolio_named(&portfolio).await, Vec::<String>::new());
    let published = audit_log(&app.state.db)
        .await
        .into_iter()
        .filter(|r| r.action == "service_catalog.published")
        .count();
    assert_eq!(published, 0);
    app.stop().await;
}
