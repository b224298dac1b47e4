//! The application's [`Gate`]: sessions loaded by `auth`, the inbox badge counted by
//! `approvals`. It lives here, above both, and reaches the extractors through the state.

use std::sync::Arc;

use axum::http::request::Parts;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::auth::{Auth, sessions};
use crate::db::Db;
use crate::error::AppError;
use crate::web::{CurrentUser, Gate, Use};

pub struct PortalGate {
    auth: Arc<Auth>,
    db: Db,
}

impl PortalGate {
    pub fn new(auth: Arc<Auth>, db: Db) -> PortalGate {
        PortalGate { auth, db }
    }
}

impl Gate for PortalGate {
    fn user<'a>(
        &'a self,
        parts: &'a Parts,
        how: Use,
    ) -> BoxFuture<'a, Result<Option<CurrentUser>, AppError>> {
        sessions::load_user(&self.auth, parts, how).boxed()
    }

    fn inbox_count<'a>(
        &'a self,
        user: &'a CurrentUser,
        cap: i64,
    ) -> BoxFuture<'a, Result<i64, AppError>> {
        crate::approvals::inbox_count(&self.db, user, cap)
            .map(|counted| counted.map_err(AppError::from))
            .boxed()
    }
}
