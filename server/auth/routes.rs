//! Sign-in pages and the OIDC redirect dance; the [`CurrentUser`] extractor.

use askama::Template;

use super::views::LoginPage;
use std::sync::Arc;

use axum::extract::{FromRef, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::Auth;
use super::sessions::client_ip;
use super::store;
use super::throttle::Note;
use crate::audit::{self, Actor, Entry};
use crate::db::now_ms;
use crate::error::AppError;
use crate::web::{ApiUser, CurrentUser, Gate, Roles};

/// The sign-in pages and `/api/v1/me`, for any application state that provides [`Auth`] and
/// the [`Gate`] of the user extractors.
pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Auth>: FromRef<S>,
    Arc<dyn Gate>: FromRef<S>,
{
    Router::new()
        .route("/login", get(login_page))
        .route("/auth/login", get(start_login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
}

/// The signed-in user and their roles.
async fn me(ApiUser(user): ApiUser) -> Json<CurrentUser> {
    Json(user)
}

/// Only same-origin relative paths are honoured after sign-in; anything else goes home.
pub fn safe_return_to(raw: Option<&str>) -> String {
    match raw {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(|c| c.is_control()) =>
        {
            p.to_string()
        }
        _ => "/".to_string(),
    }
}

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
}

/// `/auth/login`'s query: where to go afterwards and, for a step-up, how recent the sign-in at
/// the IdP must be (`max_age`, seconds).
#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    max_age: Option<String>,
}

/// Largest `max_age` a sign-in may ask for: a year (the IdP's session is shorter anyway).
const MAX_AGE_LIMIT: u64 = 366 * 86_400;

/// The `max_age` of `/auth/login`, if any: whole seconds, 0 to [`MAX_AGE_LIMIT`].
fn max_age(raw: Option<&str>) -> Result<Option<std::time::Duration>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_AGE_LIMIT)
            .map(|n| Some(std::time::Duration::from_secs(n)))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "max_age must be a whole number of seconds up to {MAX_AGE_LIMIT}; start \
                     signing in again from the page you came from."
                ))
            }),
    }
}

async fn login_page(Query(q): Query<ReturnTo>) -> Result<Html<String>, AppError> {
    let page = LoginPage {
        return_to: safe_return_to(q.return_to.as_deref()),
        message: None,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// Leaves for the IdP with a fresh state, nonce and PKCE challenge bound to this browser; with
/// `max_age`, the IdP must have authenticated the user within that many seconds (it asks them
/// again otherwise) and the callback refuses an older `auth_time` (step-up, B9).
async fn start_login(
    State(auth): State<Arc<Auth>>,
    parts: Parts,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let max_age = max_age(q.max_age.as_deref())?;
    let ip = client_ip(&parts);
    if !auth.guard.allow(ip.as_deref().unwrap_or("unknown")) {
        return too_many(&auth, ip).await;
    }
    let client = match auth.oidc.client().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(reason = e.reason(), "Sign-in could not start: {e}");
            return login_failed_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in service cannot be reached right now. Try again in a minute; if it \
                 keeps failing, tell the platform team.",
            );
        }
    };
    let (url, pending) = client.begin_with(&super::oidc::BeginOptions {
        max_age,
        ..Default::default()
    });
    let pending_json = serde_json::to_vec(&pending).map_err(anyhow::Error::from)?;
    let token = store::new_token();
    let return_to = safe_return_to(q.return_to.as_deref());
    store::save_pending_login(&auth.db, &token, &pending_json, &return_to).await?;
    let c = auth.cookies();
    Ok((
        StatusCode::SEE_OTHER,
        [
            (LOCATION, url.to_string()),
            (SET_COOKIE, c.set(c.login_name(), &token, 600)),
        ],
    )
        .into_response())
}

/// Audits a refused sign-in: the first of its kind this minute at once, the rest in the minute's
/// summary (see `throttle`).
async fn record_refusal(auth: &Auth, reason: &str, ip: Option<String>) -> Result<(), AppError> {
    let client = ip.clone().unwrap_or_else(|| "unknown".into());
    if auth.guard.note(&client, reason, now_ms()) == Note::First {
        let entry = Entry::new(
            &Actor::system("anonymous"),
            "auth.login_failed",
            "session",
            "-",
        )
        .outcome("denied")
        .detail(serde_json::json!({ "reason": reason }))
        .source_ip(ip);
        audit::store::append_alone(&auth.db, entry).await?;
    }
    Ok(())
}

/// Too many sign-in calls from one client: 429, audited like a refusal.
async fn too_many(auth: &Auth, ip: Option<String>) -> Result<Response, AppError> {
    record_refusal(auth, "rate_limited", ip).await?;
    let mut response = login_failed_page(
        StatusCode::TOO_MANY_REQUESTS,
        "Too many sign-in attempts from your address. Wait a minute, then try again.",
    )?;
    response
        .headers_mut()
        .insert("retry-after", axum::http::HeaderValue::from_static("60"));
    Ok(response)
}

fn login_failed_page(status: StatusCode, message: &str) -> Result<Response, AppError> {
    let page = LoginPage {
        return_to: "/".into(),
        message: Some(message.to_string()),
    };
    Ok((status, Html(page.render().map_err(anyhow::Error::from)?)).into_response())
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    /// The issuer of the authorization response (RFC 9207), when the IdP sends it.
    iss: Option<String>,
}

/// Records a refused sign-in (one audit record with a machine-readable reason) and answers
/// with a generic page: no session, no token material.
async fn refuse(auth: &Auth, reason: &str, ip: Option<String>) -> Result<Response, AppError> {
    tracing::warn!(auth.reason = reason, "A sign-in was refused.");
    record_refusal(auth, reason, ip).await?;
    let c = auth.cookies();
    let mut response = login_failed_page(
        StatusCode::BAD_REQUEST,
        "Sign-in did not complete. Start again from the button below.",
    )?;
    if let Ok(v) = c.set(c.login_name(), "", 0).parse() {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    Ok(response)
}

async fn callback(
    State(auth): State<Arc<Auth>>,
    parts: Parts,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let ip = client_ip(&parts);
    if !auth.guard.allow(ip.as_deref().unwrap_or("unknown")) {
        return too_many(&auth, ip).await;
    }
    let c = auth.cookies();
    if q.error.is_some() {
        return refuse(&auth, "idp_error", ip).await;
    }
    let Some(cookie_token) = c.get(&parts.headers, c.login_name()) else {
        return refuse(&auth, "no_preauth_cookie", ip).await;
    };
    let Some((plain, return_to, age_ms)) =
        store::take_pending_login(&auth.db, &cookie_token).await?
    else {
        return refuse(&auth, "unknown_login", ip).await;
    };
    if age_ms > store::LOGIN_TTL_MS {
        return refuse(&auth, "login_expired", ip).await;
    }
    let Ok(pending) = serde_json::from_slice::<super::oidc::PendingLogin>(&plain) else {
        return refuse(&auth, "unknown_login", ip).await;
    };
    let (Some(code), Some(returned_state)) = (q.code, q.state) else {
        return refuse(&auth, "missing_code_or_state", ip).await;
    };
    if !pending.state_matches(&returned_state) {
        return refuse(&auth, "state_mismatch", ip).await;
    }
    let client = match auth.oidc.client().await {
        Ok(client) => client,
        Err(e) => return refuse(&auth, e.reason(), ip).await,
    };
    // A response naming another issuer is a mix-up attack: refuse before redeeming the code.
    if !client.callback_issuer_matches(q.iss.as_deref()) {
        return refuse(&auth, "callback_issuer_mismatch", ip).await;
    }
    let (identity, grant) = match client.finish_with_grant(&code, pending).await {
        Ok(done) => done,
        Err(e) => return refuse(&auth, e.reason(), ip).await,
    };
    let mut tx = auth.db.begin().await?;
    let user_id = store::upsert_user(
        &mut tx,
        &identity.issuer,
        &identity.subject,
        identity.email.as_deref(),
        identity.name.as_deref(),
        &identity.groups,
    )
    .await?;
    if store::is_disabled(&mut tx, &user_id).await? {
        tx.commit().await?;
        return refuse(&auth, "user_disabled", ip).await;
    }
    let token = store::create_session(
        &mut tx,
        &user_id,
        auth.config.session_absolute_hours,
        &store::Authentication {
            auth_time: identity.auth_time.map(|t| t.timestamp_millis()),
            amr: identity.amr.clone(),
            acr: identity.acr.clone(),
            source_ip: ip.clone(),
        },
        Some(&grant),
    )
    .await?;
    let name = identity
        .name
        .clone()
        .unwrap_or_else(|| identity.subject.clone());
    let roles = Roles::from_groups(&identity.groups, &auth.config);
    let entry = Entry::new(
        &Actor {
            id: Some(user_id.clone()),
            name,
        },
        "auth.login",
        "user",
        user_id,
    )
    .detail(serde_json::json!({
        "groups": identity.groups, "roles": roles, "amr": identity.amr, "acr": identity.acr,
    }))
    .source_ip(ip);
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, return_to)]).into_response();
    let max_age = auth.config.session_absolute_hours * 3600;
    for v in [
        c.set(c.login_name(), "", 0),
        c.set(c.session_name(), &token, max_age),
    ] {
        if let Ok(v) = v.parse() {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    Ok(response)
}

async fn logout(
    State(auth): State<Arc<Auth>>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let c = auth.cookies();
    if let Some(token) = c.get(&headers, c.session_name()) {
        let id_hash = store::token_hash("session", &token);
        auth.sessions.forget(&id_hash);
        let mut tx = auth.db.begin().await?;
        store::delete_session(&mut tx, &id_hash).await?;
        let entry = Entry::new(&Actor::of(&user), "auth.logout", "user", user.id.clone())
            .source_ip(user.source_ip.clone());
        audit::store::append(&mut tx, entry).await?;
        tx.commit().await?;
    }
    Ok((
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/login".to_string()),
            (SET_COOKIE, c.set(c.session_name(), "", 0)),
        ],
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::{AppError, max_age, safe_return_to};

    #[test]
    fn only_same_origin_paths_are_honoured() {
        assert_eq!(safe_return_to(Some("/requests/1")), "/requests/1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "evil",
            "/a\nb",
        ] {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_return_to(None), "/");
        assert_eq!(
            safe_return_to(Some("/requests/1#decision")),
            "/requests/1#decision"
        );
    }

    #[test]
    fn max_age_is_whole_seconds_within_a_year() {
        use std::time::Duration;
        assert_eq!(max_age(None).ok(), Some(None));
        assert_eq!(max_age(Some("")).ok(), Some(None));
        assert_eq!(
            max_age(Some("900")).ok(),
            Some(Some(Duration::from_secs(900)))
        );
        assert_eq!(max_age(Some("0")).ok(), Some(Some(Duration::ZERO)));
        for bad in ["-1", "15m", "1e3", "99999999999"] {
            assert!(
                matches!(max_age(Some(bad)), Err(AppError::BadRequest(_))),
                "{bad}"
            );
        }
    }
}
