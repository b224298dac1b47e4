//! The OIDC relying-party client (`stackgate::auth::oidc`) against the real test IdP
//! (`tests/harness/idp.mjs`, npm `oidc-provider`): the authorization URL it builds, the identity
//! it reads from the ID token, the checks it makes itself (state, nonce, its own PKCE verifier,
//! the issuer at discovery) and what its errors say. The IdP's own behaviour (its SSO session,
//! login hints, unknown users, redirect URI rules) is not tested here: the portal's sign-in
//! tests meet it through the portal.
//!
//! [`login_via_idp`] is the reusable scripted login: it plays the browser from the authorization
//! URL to the redirect back to the portal's callback.

use std::time::Duration;

use stackgate::auth::oidc::{
    Identity, LoginError, OidcClient, OidcSettings, PendingLogin, state_matches,
};

use crate::support::harness_env;

/// Client registration the harness IdP is started with (its defaults).
pub const CLIENT_ID: &str = "stackgate";
/// See [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "stackgate-test-secret";

/// The IdP's issuer URL, from the harness.
pub fn issuer() -> String {
    harness_env("STACKGATE_TEST_OIDC_ISSUER")
}

/// A fresh "browser": its own cookie jar (so its own IdP session), no automatic redirects.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("build reqwest client")
}

/// Why a scripted login did not reach the callback.
#[derive(Debug)]
pub struct IdpLoginFailure {
    /// The HTTP status of the response that ended the attempt.
    pub status: reqwest::StatusCode,
    /// The URL that produced it.
    pub url: String,
    /// The start of the response body.
    pub body: String,
}

/// Plays the browser at the IdP: GET `authorize_url`, follow redirects on the IdP, POST
/// `login=<user>&password=<anything>` when the login form shows, submit the IdP's auto-submitting
/// forms (it uses one to end the previous user's IdP session when the account changes), and
/// stop at the first redirect that leaves the IdP: its URL is returned (the callback, with
/// `code` and `state`, or with `error`). Uses `client`'s cookie jar, so an existing IdP session
/// there skips the form (unless the request has `prompt=login`).
pub async fn try_login_via_idp(
    client: &reqwest::Client,
    authorize_url: &str,
    user: &str,
) -> Result<String, IdpLoginFailure> {
    let mut current = url::Url::parse(authorize_url).expect("authorize URL parses");
    let idp_origin = current.origin();
    let mut response = send(client.get(current.clone())).await;
    let mut posted_login = false;
    for _ in 0..16 {
        let status = response.status();
        if status.is_redirection() {
            let next = location(&current, &response);
            if next.origin() != idp_origin {
                return Ok(next.to_string());
            }
            current = next;
            response = send(client.get(current.clone())).await;
            continue;
        }
        if status != reqwest::StatusCode::OK {
            return Err(failure(&current, response).await);
        }
        let body = response.text().await.expect("IdP response body");
        if body.contains("document.forms[0].submit()") {
            let (action, fields) = auto_submit_form(&body);
            let target = current.join(&action).expect("form action is a URL");
            assert_eq!(
                target.origin(),
                idp_origin,
                "auto-submit form leaves the IdP"
            );
            current = target;
            response = send(client.post(current.clone()).form(&fields)).await;
            continue;
        }
        if current.path().starts_with("/interaction/") && body.contains("name=\"login\"") {
            assert!(
                !posted_login,
                "the IdP showed its login form twice for {user}"
            );
            posted_login = true;
            let form = [
                ("prompt", "login"),
                ("login", user),
                ("password", "any-password"),
            ];
            response = send(client.post(current.clone()).form(&form)).await;
            continue;
        }
        return Err(IdpLoginFailure {
            status,
            url: current.to_string(),
            body: body.chars().take(300).collect(),
        });
    }
    panic!("too many steps at the IdP for {user}");
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.expect("IdP reachable")
}

/// The action and hidden inputs of the IdP's auto-submitting form (oidc-provider's
/// `form_post.js` markup).
fn auto_submit_form(html: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let len = tag[start..].find('"')?;
        Some(html_unescape(&tag[start..start + len]))
    };
    let form_start = html.find("<form").expect("a form");
    let form_tag = &html[form_start..form_start + html[form_start..].find('>').expect("tag end")];
    let action = attr(form_tag, "action").expect("form action");
    let mut fields = Vec::new();
    let mut rest = &html[form_start..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>').expect("input tag end");
        let tag = &rest[i..i + end];
        if let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((name, value));
        }
        rest = &rest[i + end..];
    }
    (action, fields)
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// [`try_login_via_idp`] for a user who must get through: returns the callback URL
/// (`http://127.0.0.1:<port>/auth/callback?code=..&state=..&iss=..`), panics otherwise.
pub async fn login_via_idp(client: &reqwest::Client, authorize_url: &str, user: &str) -> String {
    match try_login_via_idp(client, authorize_url, user).await {
        Ok(callback) => callback,
        Err(f) => panic!(
            "scripted IdP login for {user} failed: {} at {}: {}",
            f.status, f.url, f.body
        ),
    }
}

fn location(base: &url::Url, response: &reqwest::Response) -> url::Url {
    let raw = response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("redirect has a Location")
        .to_str()
        .expect("Location is ASCII");
    base.join(raw).expect("Location is a URL")
}

async fn failure(url: &url::Url, response: reqwest::Response) -> IdpLoginFailure {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    IdpLoginFailure {
        status,
        url: url.to_string(),
        body: body.chars().take(300).collect(),
    }
}

// ---------------------------------------------------------------------------------------------

/// The callback URL the tests register; nothing listens there, the tests only read the Location.
const CALLBACK: &str = "http://127.0.0.1:18080/auth/callback";

fn settings(issuer: String) -> OidcSettings {
    OidcSettings {
        issuer_url: issuer,
        client_id: CLIENT_ID.to_owned(),
        client_secret: openidconnect::ClientSecret::new(CLIENT_SECRET.to_owned()),
        redirect_url: CALLBACK.to_owned(),
    }
}

async fn client() -> OidcClient {
    OidcClient::discover(settings(issuer()))
        .await
        .expect("discovery against the test IdP")
}

/// The callback's query parameters.
struct Callback {
    code: String,
    state: String,
    iss: Option<String>,
}

fn parse_callback(callback: &str) -> Callback {
    let url = url::Url::parse(callback).expect("callback URL parses");
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path(),
        CALLBACK,
        "IdP redirected somewhere else: {callback}"
    );
    let get = |k: &str| {
        url.query_pairs()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(get("error"), None, "IdP returned an error: {callback}");
    Callback {
        code: get("code").expect("callback has a code"),
        state: get("state").expect("callback has a state"),
        iss: get("iss"),
    }
}

/// begin → scripted login → state check → finish.
async fn login(oidc: &OidcClient, user: &str) -> Result<Identity, LoginError> {
    let (url, pending) = oidc.begin();
    let callback = login_via_idp(&browser(), url.as_str(), user).await;
    let cb = parse_callback(&callback);
    assert!(pending.state_matches(&cb.state), "state round-trips");
    assert!(oidc.callback_issuer_matches(cb.iss.as_deref()));
    oidc.finish(&cb.code, pending).await
}

fn reason<T: std::fmt::Debug>(result: Result<T, LoginError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected a LoginError, got Ok({v:?})"),
        Err(e) => e.reason(),
    }
}

/// A pending login rebuilt with one field taken from another (as if the wrong row were loaded).
fn splice(base: &PendingLogin, field: &str, from: &PendingLogin) -> PendingLogin {
    let mut a = serde_json::to_value(base).expect("serialise");
    let b = serde_json::to_value(from).expect("serialise");
    a[field] = b[field].clone();
    serde_json::from_value(a).expect("deserialise")
}

fn copy(p: &PendingLogin) -> PendingLogin {
    serde_json::from_value(serde_json::to_value(p).expect("serialise")).expect("deserialise")
}

#[tokio::test]
async fn authorization_url_asks_for_code_with_pkce_s256_state_and_nonce() {
    let oidc = client().await;
    let (url, pending) = oidc.begin();
    let (_, pending2) = oidc.begin();
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert!(url.as_str().starts_with(&format!("{}/", issuer())));
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(q.get("redirect_uri").map(String::as_str), Some(CALLBACK));
    assert_eq!(
        q.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert_eq!(q.get("code_challenge").map(String::len), Some(43));
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in ["openid", "email", "profile", "groups"] {
        assert!(scopes.contains(&s), "scope {s} in {scopes:?}");
    }
    // At least 128 bits of randomness: 32 random bytes are 43 base64url characters.
    assert!(q["state"].len() >= 22, "state too short");
    assert!(q["nonce"].len() >= 22, "nonce too short");
    assert_eq!(q["state"], pending.state());
    assert_ne!(
        pending.state(),
        pending2.state(),
        "state is fresh per login"
    );
    let debug = format!("{pending:?}");
    assert!(!debug.contains(&q["state"]) && !debug.contains(&q["nonce"]));
}

#[tokio::test]
async fn alice_logs_in_with_subject_email_name_and_groups() {
    let oidc = client().await;
    let id = login(&oidc, "alice").await.expect("alice logs in");
    assert_eq!(id.issuer, issuer());
    assert_eq!(id.subject, "0b9f7a1e-alice");
    assert_eq!(id.key(), (issuer().as_str(), "0b9f7a1e-alice"));
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.name.as_deref(), Some("Alice Anders"));
    assert_eq!(id.groups, vec!["payments-requesters".to_owned()]);
    let auth_time = id.auth_time.expect("auth_time is requested by the client");
    let age = chrono::Utc::now() - auth_time;
    assert!(
        age >= chrono::TimeDelta::seconds(-5) && age < chrono::TimeDelta::seconds(60),
        "auth_time {auth_time} is not about now"
    );
}

#[tokio::test]
async fn mallory_shares_alices_email_but_not_her_identity() {
    let oidc = client().await;
    let alice = login(&oidc, "alice").await.expect("alice logs in");
    let mallory = login(&oidc, "mallory").await.expect("mallory logs in");
    assert_eq!(mallory.email, alice.email, "same email by construction");
    assert_ne!(mallory.key(), alice.key(), "identity key is (iss, sub)");
    assert_eq!(mallory.subject, "7284e185-mallory");
    assert!(mallory.groups.is_empty());
}

#[tokio::test]
async fn state_comparison_is_exact() {
    let oidc = client().await;
    let (_, pending) = oidc.begin();
    let state = pending.state().to_owned();
    assert!(state_matches(&state, &state));
    assert!(!state_matches(&state, &state[..state.len() - 1]));
    assert!(!state_matches(&state, &format!("{state}x")));
    assert!(!state_matches(&state, ""));
    assert!(!pending.state_matches(&state.to_uppercase()));
}

#[tokio::test]
async fn wrong_nonce_is_rejected_even_with_the_right_verifier() {
    let oidc = client().await;
    let (url, mine) = oidc.begin();
    let (_, other) = oidc.begin();
    let cb = parse_callback(&login_via_idp(&browser(), url.as_str(), "alice").await);
    let spliced = splice(&mine, "nonce", &other);
    assert_eq!(
        reason(oidc.finish(&cb.code, spliced).await),
        "nonce_mismatch"
    );
}

#[tokio::test]
async fn wrong_verifier_is_rejected_even_with_the_right_nonce() {
    let oidc = client().await;
    let (url, mine) = oidc.begin();
    let (_, other) = oidc.begin();
    let cb = parse_callback(&login_via_idp(&browser(), url.as_str(), "alice").await);
    let spliced = splice(&mine, "pkce_verifier", &other);
    assert_eq!(
        reason(oidc.finish(&cb.code, spliced).await),
        "token_exchange_failed"
    );
}

#[tokio::test]
async fn a_code_cannot_be_redeemed_twice() {
    let oidc = client().await;
    let (url, pending) = oidc.begin();
    let saved = copy(&pending);
    let cb = parse_callback(&login_via_idp(&browser(), url.as_str(), "alice").await);
    oidc.finish(&cb.code, pending).await.expect("first use");
    let err = oidc.finish(&cb.code, saved).await.expect_err("replay");
    assert_eq!(err.reason(), "token_exchange_failed");
    let message = err.to_string();
    assert!(!message.contains(&cb.code), "no token material: {message}");
    assert!(message.contains("invalid_grant"), "{message}");
}

#[tokio::test]
async fn a_tampered_code_is_refused() {
    let oidc = client().await;
    let (url, pending) = oidc.begin();
    let cb = parse_callback(&login_via_idp(&browser(), url.as_str(), "alice").await);
    let mut tampered: Vec<char> = cb.code.chars().collect();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    assert_ne!(tampered, cb.code);
    let err = oidc.finish(&tampered, pending).await.expect_err("tampered");
    assert_eq!(err.reason(), "token_exchange_failed");
    assert!(!err.to_string().contains(&tampered));
}

#[tokio::test]
async fn wrong_client_secret_is_refused_by_the_token_endpoint() {
    let good = client().await;
    let mut s = settings(issuer());
    s.client_secret = openidconnect::ClientSecret::new("not-the-secret".to_owned());
    let bad = OidcClient::discover(s)
        .await
        .expect("discovery needs no secret");
    let (url, pending) = bad.begin();
    let cb = parse_callback(&login_via_idp(&browser(), url.as_str(), "alice").await);
    let err = bad.finish(&cb.code, pending).await.expect_err("bad secret");
    assert_eq!(err.reason(), "token_exchange_failed");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(!err.to_string().contains("not-the-secret"));
    drop(good);
}

#[tokio::test]
async fn issuer_spelled_differently_is_refused_at_discovery() {
    let issuer = issuer();
    for variant in [
        format!("{issuer}/"),
        issuer.replacen("http://", "HTTP://", 1),
        issuer.replacen("127.0.0.1", "localhost", 1),
    ] {
        let err = OidcClient::discover(settings(variant.clone()))
            .await
            .expect_err("issuer mismatch");
        assert_eq!(err.reason(), "issuer_mismatch", "{variant}: {err}");
    }
}

#[tokio::test]
async fn unreachable_idp_is_reported_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    // A closed port answers at once: discovery must report it, not hang.
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        OidcClient::discover(settings(format!("http://127.0.0.1:{port}"))),
    )
    .await
    .expect("discovery ends")
    .expect_err("nothing listens there");
    assert_eq!(err.reason(), "idp_unreachable");
}

#[tokio::test]
async fn plain_http_issuer_off_loopback_is_refused() {
    let err = OidcClient::discover(settings("http://idp.example.com".to_owned()))
        .await
        .expect_err("plain http to a remote host");
    assert_eq!(err.reason(), "insecure_endpoint");
}
