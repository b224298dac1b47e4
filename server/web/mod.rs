//! What every page and API handler shares, below the domains: who is signed in ([`CurrentUser`]
//! and its extractors), the page frame ([`Layout`]), times for people ([`When`]), JSON bodies.
//!
//! Loading a session and counting a user's inbox belong to layers above (`auth`, `approvals`);
//! they reach the extractors through the [`Gate`] trait, which the application provides in its
//! state. So `auth`, `audit` and `catalog` can serve pages without depending on the domains that
//! depend on them.

mod api;
mod layout;
mod user;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::Method;
use axum::http::request::Parts;
use futures_util::future::BoxFuture;

pub use api::{ApiJson, ApiUser};
pub use layout::{BADGE_CAP, Layout, When, badge};
pub use user::{CurrentUser, Roles, SessionKey};

use crate::error::AppError;

/// How a request uses the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A page or API read: counts as activity; a recent check on this replica may be reused.
    Read,
    /// A write: counts as activity; always checked in the database.
    Write,
    /// A background poll: the session must be valid, but this does not keep it alive.
    Passive,
}

/// What the extractors need from the layers above: the user of a request's session, and how
/// many requests wait for a user's review.
pub trait Gate: Send + Sync + 'static {
    /// The user of the session the request's cookie names; `None` without a valid session.
    fn user<'a>(
        &'a self,
        parts: &'a Parts,
        how: Use,
    ) -> BoxFuture<'a, Result<Option<CurrentUser>, AppError>>;

    /// Requests waiting for `user`'s review, counted no further than `cap`.
    fn inbox_count<'a>(
        &'a self,
        user: &'a CurrentUser,
        cap: i64,
    ) -> BoxFuture<'a, Result<i64, AppError>>;
}

/// Where to send a caller who is not signed in, after signing in.
fn here(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into())
}

async fn user_of<S>(parts: &mut Parts, state: &S, how: Use) -> Result<CurrentUser, AppError>
where
    Arc<dyn Gate>: FromRef<S>,
{
    if let Some(user) = parts.extensions.get::<CurrentUser>() {
        return Ok(user.clone());
    }
    let gate = Arc::<dyn Gate>::from_ref(state);
    match gate.user(parts, how).await? {
        Some(user) => {
            parts.extensions.insert(user.clone());
            Ok(user)
        }
        None => Err(AppError::Unauthenticated {
            return_to: here(parts),
        }),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser
where
    Arc<dyn Gate>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let how = if matches!(parts.method, Method::GET | Method::HEAD) {
            Use::Read
        } else {
            Use::Write
        };
        user_of(parts, state, how).await
    }
}

/// The signed-in user of a background poll: the session must be valid, but polling does not
/// count as activity, so an idle session still ends while a page polls.
pub struct PassiveUser(pub CurrentUser);

impl<S: Send + Sync> FromRequestParts<S> for PassiveUser
where
    Arc<dyn Gate>: FromRef<S>,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        user_of(parts, state, Use::Passive).await.map(PassiveUser)
    }
}
