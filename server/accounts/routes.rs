//! The account registry for admins: pages under `/admin/accounts` (each a plain form) and the
//! same actions under `/api/v1/accounts`. Only admins reach them: pages answer others 403, the
//! API 404 (it does not say the registry exists).

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;

use super::input::{AccountBody, AccountForm, validate};
use super::store::{self, Who};
use super::trust::{BootstrapParameters, PORTAL_ROLE_PLACEHOLDER, trust_policy};
use super::views::{AccountFormPage, AccountListPage, AccountPage, AccountRow, CheckView};
use super::{Account, AccountSpec, LastCheck, ManagedBy, Purpose, Status, check};
use crate::aws::{AwsConnector, AwsSettings};
use crate::error::{ApiError, AppError, FieldError};
use crate::state::AppState;
use crate::web::{ApiJson, ApiUser, CurrentUser, Layout};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/accounts", get(list_page).post(create_page))
        .route("/admin/accounts/new", get(new_page))
        .route("/admin/accounts/{id}", get(show_page))
        .route(
            "/admin/accounts/{id}/edit",
            get(edit_page).post(edit_submit),
        )
        .route("/admin/accounts/{id}/{action}", post(action_page))
        .route("/api/v1/accounts", get(list_api).post(create_api))
        .route("/api/v1/accounts/{id}", get(show_api).put(edit_api))
        .route("/api/v1/accounts/{id}/{action}", post(action_api))
}

fn render(t: &impl Template) -> Result<String, AppError> {
    t.render().map_err(|e| AppError::Internal(e.into()))
}

fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only platform admins manage the account registry.".into(),
        ))
    }
}

/// The API hides the registry from everyone but admins.
fn require_admin_api(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

async fn account(state: &AppState, id: &str) -> Result<Account, AppError> {
    store::get(&state.db, id).await?.ok_or(AppError::NotFound)
}

fn known_teams(state: &AppState) -> Vec<&str> {
    state.config.teams.iter().map(|t| t.name.as_str()).collect()
}

// ---- what the pages and the API share ----

/// Checks and registers a new account (managed by admins from now on).
async fn create(
    state: &AppState,
    user: &CurrentUser,
    body: &AccountBody,
) -> Result<Account, AppError> {
    let id = body.id.clone().unwrap_or_default();
    let spec = validate(body, &id, &known_teams(state)).map_err(AppError::Invalid)?;
    let mut tx = state.db.begin().await?;
    if store::lock(&mut tx, state.db.backend(), spec.id.as_str())
        .await?
        .is_some()
    {
        return Err(AppError::Invalid(vec![FieldError::new(
            "id",
            format!(
                "Account {} is already registered: edit it instead.",
                spec.id
            ),
        )]));
    }
    store::insert(&mut tx, &spec, ManagedBy::Admin, &Who::user(user)).await?;
    tx.commit().await?;
    tracing::info!(account.id = %spec.id, "An admin registered an account.");
    account(state, spec.id.as_str()).await
}

async fn edit(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    body: &AccountBody,
) -> Result<Account, AppError> {
    let current = account(state, id).await?;
    if body.id.as_deref().is_some_and(|b| !b.is_empty() && b != id) {
        return Err(AppError::Invalid(vec![FieldError::new(
            "id",
            "An account's id cannot change: add a new account instead.",
        )]));
    }
    let spec: AccountSpec =
        validate(body, current.id.as_str(), &known_teams(state)).map_err(AppError::Invalid)?;
    let mut tx = state.db.begin().await?;
    store::update(&mut tx, state.db.backend(), &spec, &Who::user(user)).await?;
    tx.commit().await?;
    account(state, id).await
}

/// Disable, enable, rotate the ExternalId, or check access; returns the check for `check`.
async fn act(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    action: &str,
    reason: Option<String>,
) -> Result<Option<LastCheck>, AppError> {
    let current = account(state, id).await?;
    let who = Who::user(user);
    let backend = state.db.backend();
    let mut result = None;
    let mut tx = match action {
        "disable" | "enable" | "rotate-external-id" => state.db.begin().await?,
        "check" => {
            let connector = AwsConnector::new(AwsSettings {
                endpoint_url: state.config.aws_endpoint_url.clone(),
                sts_region: state.config.aws_region.clone(),
            })
            .await;
            let outcome = check::run(&connector, &current, &user.id, crate::db::now_ms()).await;
            tracing::info!(account.id = %current.id, ok = outcome.ok, "An admin checked access to an account.");
            result = Some(outcome);
            state.db.begin().await?
        }
        _ => return Err(AppError::NotFound),
    };
    match (action, &result) {
        ("disable", _) => {
            let reason = reason
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| format!("disabled by {}", user.name));
            let reason: String = reason.chars().take(200).collect();
            store::set_status(
                &mut tx,
                backend,
                &current.id,
                Status::Disabled,
                Some(&reason),
                &who,
            )
            .await?;
        }
        ("enable", _) => {
            store::set_status(&mut tx, backend, &current.id, Status::Active, None, &who).await?;
        }
        ("rotate-external-id", _) => {
            store::rotate_external_id(&mut tx, backend, &current.id, &who).await?;
        }
        (_, Some(outcome)) => {
            store::record_check(&mut tx, backend, &current.id, outcome, &who).await?;
        }
        _ => return Err(AppError::NotFound),
    }
    tx.commit().await?;
    Ok(result)
}

// ---- pages ----

async fn list_page(
    State(state): State<AppState>,
    user: CurrentUser,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let rows = store::list(&state.db)
        .await?
        .into_iter()
        .map(|account| AccountRow {
            check: CheckView::of(&account.last_check),
            account,
        })
        .collect();
    let layout = Layout::new(state.gate.as_ref(), &user, "admin").await?;
    Ok(Html(render(&AccountListPage { layout, rows })?))
}

async fn show_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let account = account(&state, &id).await?;
    let portal = state.config.portal_role_arn.as_deref();
    let policy = trust_policy(
        portal.unwrap_or(PORTAL_ROLE_PLACEHOLDER),
        &account.external_id,
    );
    let page = AccountPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        check: CheckView::of(&account.last_check),
        trust_policy: serde_json::to_string_pretty(&policy).map_err(anyhow::Error::from)?,
        bootstrap: BootstrapParameters::of(&account, portal),
        account,
    };
    Ok(Html(render(&page)?))
}

async fn form_page(
    state: &AppState,
    user: &CurrentUser,
    editing: Option<&Account>,
    form: AccountForm,
    errors: Vec<FieldError>,
) -> Result<Response, AppError> {
    use strum::VariantNames;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut by_field: BTreeMap<String, String> = BTreeMap::new();
    for e in errors {
        by_field
            .entry(e.field)
            .and_modify(|m| {
                m.push(' ');
                m.push_str(&e.message);
            })
            .or_insert(e.message);
    }
    let page = AccountFormPage {
        layout: Layout::new(state.gate.as_ref(), user, "admin").await?,
        editing: editing.map(|a| a.id.to_string()),
        from_config: editing.is_some_and(|a| a.managed_by == ManagedBy::Config),
        form,
        errors: by_field,
        purposes: Purpose::VARIANTS,
        teams: known_teams(state).into_iter().map(str::to_string).collect(),
    };
    Ok((status, Html(render(&page)?)).into_response())
}

async fn new_page(State(state): State<AppState>, user: CurrentUser) -> Result<Response, AppError> {
    require_admin(&user)?;
    let form = AccountForm {
        purpose: "dev".into(),
        ..AccountForm::default()
    };
    form_page(&state, &user, None, form, vec![]).await
}

async fn create_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Form(form): Form<AccountForm>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let created = match form.body() {
        Ok(body) => create(&state, &user, &body).await,
        Err(e) => Err(AppError::Invalid(vec![e])),
    };
    match created {
        Ok(a) => Ok(Redirect::to(&format!("/admin/accounts/{}", a.id)).into_response()),
        Err(AppError::Invalid(errors)) => form_page(&state, &user, None, form, errors).await,
        Err(e) => Err(e),
    }
}

async fn edit_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let current = account(&state, &id).await?;
    let form = AccountForm::of(&current.spec());
    form_page(&state, &user, Some(&current), form, vec![]).await
}

async fn edit_submit(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Form(form): Form<AccountForm>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let current = account(&state, &id).await?;
    let edited = match form.body() {
        Ok(body) => edit(&state, &user, &id, &body).await,
        Err(e) => Err(AppError::Invalid(vec![e])),
    };
    match edited {
        Ok(a) => Ok(Redirect::to(&format!("/admin/accounts/{}", a.id)).into_response()),
        Err(AppError::Invalid(errors)) => {
            form_page(&state, &user, Some(&current), form, errors).await
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
struct ActionForm {
    #[serde(default)]
    reason: Option<String>,
}

async fn action_page(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    act(&state, &user, &id, &action, form.reason).await?;
    Ok(Redirect::to(&format!("/admin/accounts/{id}")).into_response())
}

// ---- API ----

/// An account as the API shows it; the detail adds its trust policy and bootstrap parameters.
fn json(account: &Account, state: &AppState, detail: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "id": account.id, "name": account.name, "purpose": account.purpose,
        "env_class": account.env_class, "regions": account.regions, "teams": account.teams,
        "deploy_role_arn": account.deploy_role_arn,
        "cfn_execution_role_arn": account.cfn_execution_role_arn,
        "status": account.status, "status_reason": account.status_reason,
        "managed_by": account.managed_by, "last_check": account.last_check,
    });
    if detail {
        let portal = state.config.portal_role_arn.as_deref();
        v["external_id"] = account.external_id.clone().into();
        v["previous_external_id"] = account.previous_external_id.clone().into();
        v["settings"] = serde_json::json!(account.settings);
        v["trust_policy"] = trust_policy(
            portal.unwrap_or(PORTAL_ROLE_PLACEHOLDER),
            &account.external_id,
        );
        v["bootstrap_parameters"] = serde_json::json!(BootstrapParameters::of(account, portal));
    }
    v
}

async fn list_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin_api(&user)?;
    let accounts = store::list(&state.db).await?;
    let items: Vec<_> = accounts.iter().map(|a| json(a, &state, false)).collect();
    Ok(Json(serde_json::json!({ "accounts": items })))
}

async fn show_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin_api(&user)?;
    Ok(Json(json(&account(&state, &id).await?, &state, true)))
}

async fn create_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    require_admin_api(&user)?;
    let created = create(&state, &user, &body).await?;
    Ok((StatusCode::CREATED, Json(json(&created, &state, true))))
}

async fn edit_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccountBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin_api(&user)?;
    Ok(Json(json(
        &edit(&state, &user, &id, &body).await?,
        &state,
        true,
    )))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn action_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin_api(&user)?;
    // The body is optional (`{"reason"}` when disabling).
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| AppError::BadRequest(e.to_string()))?
    };
    match act(&state, &user, &id, &action, body.reason).await? {
        Some(c) => Ok(Json(serde_json::json!({ "ok": c.ok, "reason": c.reason }))),
        None => Ok(Json(json(&account(&state, &id).await?, &state, true))),
    }
}
