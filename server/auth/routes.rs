//! Sign-in pages and the OIDC redirect dance; the [`CurrentUser`] extractor.

use std::net::SocketAddr;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::session::{self, Cookies};
use super::{CurrentUser, Roles};
use crate::audit::{self, Actor, Entry};
use crate::db::now_ms;
use crate::error::AppError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_page))
        .route("/auth/login", get(start_login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
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

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    return_to: String,
    message: Option<String>,
}

async fn login_page(Query(q): Query<ReturnTo>) -> Result<Html<String>, AppError> {
    let page = LoginPage {
        return_to: safe_return_to(q.return_to.as_deref()),
        message: None,
    };
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

fn cookies(state: &AppState) -> Cookies {
    Cookies {
        secure: state.config.secure_cookies(),
    }
}

/// Leaves for the IdP with a fresh state, nonce and PKCE challenge bound to this browser.
async fn start_login(
    State(state): State<AppState>,
    Query(q): Query<ReturnTo>,
) -> Result<Response, AppError> {
    let client = match state.oidc.client().await {
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
    let (url, pending) = client.begin();
    let pending_json = serde_json::to_vec(&pending).map_err(anyhow::Error::from)?;
    let token = session::new_token();
    let return_to = safe_return_to(q.return_to.as_deref());
    session::save_pending_login(&state.db, &token, &pending_json, &return_to).await?;
    let c = cookies(&state);
    Ok((
        StatusCode::SEE_OTHER,
        [
            (LOCATION, url.to_string()),
            (SET_COOKIE, c.set(c.login_name(), &token, 600)),
        ],
    )
        .into_response())
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
}

/// Records a refused sign-in (one audit record with a machine-readable reason) and answers
/// with a generic page: no session, no token material.
async fn refuse(state: &AppState, reason: &str, ip: Option<String>) -> Result<Response, AppError> {
    tracing::warn!(auth.reason = reason, "A sign-in was refused.");
    let entry = Entry::new(
        &Actor::system("anonymous"),
        "auth.login_failed",
        "session",
        "-",
    )
    .outcome("denied")
    .detail(serde_json::json!({ "reason": reason }))
    .source_ip(ip);
    audit::store::append_alone(&state.db, entry).await?;
    let c = cookies(state);
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
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    let c = cookies(&state);
    if q.error.is_some() {
        return refuse(&state, "idp_error", ip).await;
    }
    let Some(cookie_token) = session::cookie(&headers, c.login_name()) else {
        return refuse(&state, "no_preauth_cookie", ip).await;
    };
    let Some((plain, return_to, age_ms)) =
        session::take_pending_login(&state.db, &cookie_token).await?
    else {
        return refuse(&state, "unknown_login", ip).await;
    };
    if age_ms > session::LOGIN_TTL_MS {
        return refuse(&state, "login_expired", ip).await;
    }
    let Ok(pending) = serde_json::from_slice::<super::oidc::PendingLogin>(&plain) else {
        return refuse(&state, "unknown_login", ip).await;
    };
    let (Some(code), Some(returned_state)) = (q.code, q.state) else {
        return refuse(&state, "missing_code_or_state", ip).await;
    };
    if !pending.state_matches(&returned_state) {
        return refuse(&state, "state_mismatch", ip).await;
    }
    let client = match state.oidc.client().await {
        Ok(client) => client,
        Err(e) => return refuse(&state, e.reason(), ip).await,
    };
    let identity = match client.finish(&code, pending).await {
        Ok(identity) => identity,
        Err(e) => return refuse(&state, e.reason(), ip).await,
    };
    let mut tx = state.db.begin().await?;
    let user_id = session::upsert_user(
        &mut tx,
        &identity.issuer,
        &identity.subject,
        identity.email.as_deref(),
        identity.name.as_deref(),
        &identity.groups,
    )
    .await?;
    if session::is_disabled(&mut tx, &user_id).await? {
        tx.commit().await?;
        return refuse(&state, "user_disabled", ip).await;
    }
    let token = session::create_session(
        &mut tx,
        &user_id,
        state.config.session_absolute_hours,
        identity.auth_time.map(|t| t.timestamp_millis()),
    )
    .await?;
    let name = identity
        .name
        .clone()
        .unwrap_or_else(|| identity.subject.clone());
    let roles = Roles::from_groups(&identity.groups, &state.config);
    let entry = Entry::new(
        &Actor {
            id: Some(user_id.clone()),
            name,
        },
        "auth.login",
        "user",
        user_id,
    )
    .detail(serde_json::json!({ "groups": identity.groups, "roles": roles }))
    .source_ip(ip);
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    let mut response = (StatusCode::SEE_OTHER, [(LOCATION, return_to)]).into_response();
    let max_age = state.config.session_absolute_hours * 3600;
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
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let c = cookies(&state);
    if let Some(token) = session::cookie(&headers, c.session_name()) {
        let mut tx = state.db.begin().await?;
        session::delete_session(&mut tx, &session::token_hash("session", &token)).await?;
        let entry = Entry::new(&user.actor(), "auth.logout", "user", user.id.clone())
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

/// The client's address, when the server was started with connection info.
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// Loads the session named by the cookie, enforcing idle and absolute lifetimes and disabled
/// users. `None` when there is no valid session.
pub async fn load_user(state: &AppState, parts: &Parts) -> Result<Option<CurrentUser>, AppError> {
    let c = cookies(state);
    let Some(token) = session::cookie(&parts.headers, c.session_name()) else {
        return Ok(None);
    };
    let Some(row) = session::find_session(&state.db, &token).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let idle_ms = state.config.session_idle_minutes * 60_000;
    if row.disabled || now > row.expires_at || now - row.last_seen_at > idle_ms {
        let mut tx = state.db.begin().await?;
        session::delete_session(&mut tx, &row.id_hash).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if now - row.last_seen_at > 30_000 {
        session::touch_session(&state.db, &row.id_hash).await?;
    }
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    Ok(Some(CurrentUser {
        id: row.user_id,
        roles: Roles::from_groups(&row.groups, &state.config),
        issuer: row.issuer,
        subject: row.subject,
        name: row.name,
        email: row.email,
        csrf_token: row.csrf_token,
        source_ip,
    }))
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        match load_user(state, parts).await? {
            Some(user) => {
                parts.extensions.insert(user.clone());
                Ok(user)
            }
            None => Err(AppError::Unauthenticated {
                return_to: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_else(|| "/".into()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

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
    }
}
