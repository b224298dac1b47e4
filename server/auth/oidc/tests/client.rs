//! The client against a test IdP served locally: discovery, key rotation, begin and finish.

use super::*;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::atomic::{AtomicUsize, Ordering};

// ---- key rotation with a fake IdP (A12) ----------------------------------------------

/// A test IdP on a loopback port: a discovery document and a swappable JWKS, counting JWKS
/// fetches.
struct FakeIdp {
    issuer: String,
    jwks: Arc<std::sync::Mutex<String>>,
    jwks_hits: Arc<AtomicUsize>,
}

/// What the test IdP's handlers serve.
#[derive(Clone)]
struct Served {
    discovery: Arc<String>,
    jwks: Arc<std::sync::Mutex<String>>,
    jwks_hits: Arc<AtomicUsize>,
}

fn json_response(status: StatusCode, body: String) -> impl IntoResponse {
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

async fn serve_discovery(State(served): State<Served>) -> impl IntoResponse {
    json_response(StatusCode::OK, served.discovery.as_str().to_owned())
}

async fn serve_jwks(State(served): State<Served>) -> impl IntoResponse {
    served.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let body = served.jwks.lock().unwrap().clone();
    json_response(StatusCode::OK, body)
}

async fn not_found() -> impl IntoResponse {
    json_response(StatusCode::NOT_FOUND, "{}".to_owned())
}

async fn fake_idp(initial_jwks: &CoreJsonWebKeySet) -> FakeIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        // A hostile IdP advertising HS256 and none: must not widen what we accept.
        "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
    })
    .to_string();
    let served = Served {
        discovery: Arc::new(discovery),
        jwks: Arc::new(std::sync::Mutex::new(
            serde_json::to_string(initial_jwks).unwrap(),
        )),
        jwks_hits: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(serve_discovery))
        .route("/jwks", get(serve_jwks))
        .fallback(not_found)
        .with_state(served.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeIdp {
        issuer,
        jwks: served.jwks,
        jwks_hits: served.jwks_hits,
    }
}

/// Our registration at the test IdP (client secret `s`).
fn fake_settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        issuer_url: issuer.to_owned(),
        client_id: CLIENT.to_owned(),
        client_secret: ClientSecret::new("s".to_owned()),
        redirect_url: "http://127.0.0.1:1/auth/callback".to_owned(),
    }
}

/// A client discovered from the test IdP.
async fn discover(idp: &FakeIdp) -> OidcClient {
    OidcClient::discover(fake_settings(&idp.issuer))
        .await
        .expect("discovery against the fake IdP")
}

#[tokio::test]
async fn unknown_kid_refetches_jwks_once_per_cooldown() {
    let a = key(KEY_A, Some("a"));
    let b = key(KEY_B, Some("b"));
    let idp = fake_idp(&jwks(&[&a])).await;
    let oidc = discover(&idp).await;
    assert_eq!(
        idp.jwks_hits.load(Ordering::SeqCst),
        1,
        "discovery fetches JWKS"
    );

    // The IdP rotates to key b.
    *idp.jwks.lock().unwrap() = serde_json::to_string(&jwks(&[&a, &b])).unwrap();
    let now = now();
    let mut c = claims(now);
    c = c.set_issuer(IssuerUrl::new(idp.issuer.clone()).unwrap());
    let token = sign(c.clone(), &b);
    let nonce = Nonce::new(NONCE.to_owned());
    let checks = checks_at(&nonce, now);
    let id = oidc
        .verify_with_key_refresh(&token, &checks)
        .await
        .expect("rotated key found after one refetch");
    assert_eq!(id.subject, "sub-alice");
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // Known key now: no further fetch.
    oidc.verify_with_key_refresh(&token, &checks)
        .await
        .expect("cached");
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // A flood of tokens with random kids inside the cool-down: no refetch amplification.
    for i in 0..50 {
        let rogue = key(KEY_B, Some(&format!("rogue-{i}")));
        let err = oidc
            .verify_with_key_refresh(&sign(c.clone(), &rogue), &checks)
            .await
            .expect_err("unknown kid");
        assert_eq!(err.reason(), "unknown_signing_key");
    }
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 2);

    // HS256 stays refused although this IdP advertises it.
    let mut body = payload(now);
    body["iss"] = serde_json::Value::String(idp.issuer.clone());
    let hs = hmac_token(serde_json::json!({"alg": "HS256"}), &body, b"s");
    let err = oidc
        .verify_with_key_refresh(&hs, &checks)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "alg_not_allowed");
}

#[tokio::test]
async fn discovery_reports_the_mismatching_issuer_and_fetches_no_keys() {
    let a = key(KEY_A, Some("a"));
    let idp = fake_idp(&jwks(&[&a])).await;
    let configured = format!("{}/", idp.issuer);
    let err = OidcClient::discover(fake_settings(&configured))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "issuer_mismatch");
    match &err {
        LoginError::IssuerMismatch {
            configured: c,
            reported,
        } => {
            assert_eq!(c, &configured);
            assert_eq!(reported, &idp.issuer);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(idp.jwks_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_expired_pending_login_is_refused_before_any_exchange() {
    let a = key(KEY_A, Some("a"));
    let idp = fake_idp(&jwks(&[&a])).await;
    let oidc = discover(&idp).await;
    let old = pending(Utc::now() - TimeDelta::minutes(11));
    let err = oidc.finish("some-code", old).await.unwrap_err();
    assert_eq!(err.reason(), "login_expired");
}

#[tokio::test]
async fn begin_produces_pkce_s256_and_fresh_secrets() {
    let a = key(KEY_A, Some("a"));
    let idp = fake_idp(&jwks(&[&a])).await;
    let oidc = discover(&idp).await;
    let (url, p1) = oidc.begin();
    let (_, p2) = oidc.begin();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["state"], p1.state());
    // S256 of our verifier.
    let expected = b64(&Sha256::digest(p1.pkce_verifier.secret().as_bytes()));
    assert_eq!(q["code_challenge"], expected);
    assert_eq!(q["nonce"], *p1.nonce.secret());
    assert!(p1.state().len() >= 43 && p1.nonce.secret().len() >= 43);
    assert_ne!(p1.state(), p2.state());
    assert_ne!(p1.nonce.secret(), p2.nonce.secret());
    assert_ne!(p1.pkce_verifier.secret(), p2.pkce_verifier.secret());
    assert!(oidc.callback_issuer_matches(None));
    assert!(oidc.callback_issuer_matches(Some(&idp.issuer)));
    assert!(!oidc.callback_issuer_matches(Some("https://evil.example")));
}
