//! The admin front page: it leads admins to every admin area, and nobody else gets in (C1).

use reqwest::StatusCode;

use crate::app::{Backend, TestApp, UserClient};
use crate::oidc::browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_page_links_every_admin_area_for_admins_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let dave = app.login("dave").await;
    let page = dave.get("/admin").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for area in stackgate::admin::AREAS {
        assert!(
            html.contains(&format!("href=\"{}\"", area.href)),
            "{}",
            area.href
        );
        // Each area it links answers the admin.
        assert_eq!(
            dave.get(area.href).await.status(),
            StatusCode::OK,
            "{}",
            area.href
        );
    }
    let home = dave.get("/").await.text().await.unwrap();
    assert!(
        home.contains("href=\"/admin\""),
        "admins have the Admin entry"
    );
    for login in ["alice", "bob", "erin"] {
        let user = app.login(login).await;
        assert_eq!(
            user.get("/admin").await.status(),
            StatusCode::FORBIDDEN,
            "{login}"
        );
        let home = user.get("/").await.text().await.unwrap();
        assert!(
            !home.contains("href=\"/admin\""),
            "{login} has no Admin entry"
        );
    }
    let anonymous = UserClient {
        client: browser(),
        base: app.base.clone(),
        csrf: String::new(),
    };
    assert_eq!(
        anonymous.get("/admin").await.status(),
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}
