//! Blueprint versions for admins: `/admin/blueprints` pages (each a plain form) and the
//! `/api/v1/blueprints/{slug}/versions` API. Uploading stores a checked draft; publishing
//! re-checks it; deprecating and retiring move it on. Every change has one audit record, written
//! in the change's transaction, with the state before and after.
//!
//! Only admins reach the pages (others get 403) and the writing API (others get 404). The list of
//! a blueprint's versions is readable by every signed-in user, who sees the published and
//! deprecated ones; admins see drafts and retired versions too.

use askama::Template;
use axum::extract::{FromRequest, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::store;
use super::versions::{Semver, StoredVersion, Transition, VersionState, check_upload};
use super::views::{AdminBlueprintPage, AdminIndexPage, AdminVersionPage, SlugRow, VersionRow};
use super::{Blueprint, Source};
use crate::audit::Actor;
use crate::db::now_ms;
use crate::error::{ApiError, AppError, FieldError};
use crate::state::AppState;
use crate::web::{ApiUser, CurrentUser, Layout, When};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/blueprints", get(index))
        .route("/admin/blueprints/{slug}", get(blueprint).post(upload_form))
        .route("/admin/blueprints/{slug}/versions/{version}", get(version))
        .route(
            "/admin/blueprints/{slug}/versions/{version}/{action}",
            post(transition_form),
        )
        .route(
            "/api/v1/blueprints/{slug}/versions",
            get(list_api).post(upload_api),
        )
        .route(
            "/api/v1/blueprints/{slug}/versions/{version}/{action}",
            post(transition_api),
        )
}

fn require_admin(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "Only platform admins manage blueprint versions.".into(),
        ))
    }
}

/// The API hides admin routes from everyone else.
fn require_admin_api(user: &CurrentUser) -> Result<(), AppError> {
    if user.roles.admin {
        Ok(())
    } else {
        Err(AppError::NotFound)
    }
}

fn render(page: impl Template) -> Result<Html<String>, AppError> {
    Ok(Html(page.render().map_err(anyhow::Error::from)?))
}

/// An upload as the API takes it: the two files' texts (and, optionally, extra JSON files).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadInput {
    pub manifest: String,
    pub template: String,
    #[serde(default)]
    pub files: std::collections::BTreeMap<String, String>,
}

/// Checks and stores an uploaded version as a draft; nothing is stored when any check fails.
pub async fn upload(
    state: &AppState,
    user: &CurrentUser,
    slug: &str,
    input: UploadInput,
) -> Result<StoredVersion, AppError> {
    let mut source = Source {
        manifest: input.manifest,
        template: input.template,
        files: input.files.into_iter().collect(),
    };
    if let Some((name, _)) = source.files.iter().find(|(n, _)| !is_file_name(n)) {
        return Err(AppError::Invalid(vec![FieldError::new(
            "files",
            format!(
                "'{name}' is not an extra file name: use lowercase letters, digits and '-', ending in .json"
            ),
        )]));
    }
    // The version number first: it decides what the upload is compared with.
    let version = super::manifest::Manifest::parse(&source.manifest)
        .map_err(|e| {
            AppError::Invalid(vec![FieldError::new(
                "manifest",
                format!("blueprint.toml: {e:#}"),
            )])
        })?
        .version;
    let semver = Semver::parse(&version).map_err(|e| {
        AppError::Invalid(vec![FieldError::new(
            "version",
            format!("blueprint.toml: version {e}"),
        )])
    })?;
    if store::get(&state.db, slug, &version).await?.is_some() {
        return Err(AppError::Conflict(format!(
            "{slug} {version} exists already: versions never change; give this one a new version number"
        )));
    }
    let previous = store::previous(&state.db, slug, semver).await?;
    // An upload without extra files keeps the previous version's (the form carries only the
    // manifest and the template); they are stored with it and part of its digest.
    if source.files.is_empty()
        && let Some(p) = &previous
    {
        source.files = p.source.files.clone();
    }
    let bp = checked(state, slug, &source, previous.map(|p| p.source)).await?;
    let stored = StoredVersion {
        slug: slug.to_string(),
        version: bp.version.clone(),
        source,
        digest: bp.digest.clone(),
        state: VersionState::Draft,
        origin: "upload".into(),
        created_by: Some(user.id.clone()),
        created_at: now_ms(),
    };
    let mut tx = state.db.begin().await?;
    store::insert(&mut tx, &stored, &Actor::of(user)).await?;
    tx.commit().await?;
    Ok(stored)
}

fn is_file_name(name: &str) -> bool {
    name.strip_suffix(".json").is_some_and(|stem| {
        !stem.is_empty()
            && stem
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

/// Runs the upload checks on the CPU pool (rendering and cfn-guard are CPU work).
async fn checked(
    state: &AppState,
    slug: &str,
    source: &Source,
    previous: Option<Source>,
) -> Result<Blueprint, AppError> {
    let (slug, source, policy) = (slug.to_string(), source.clone(), state.policy.clone());
    state
        .cpu
        .run(move || check_upload(&slug, &source, previous.as_ref(), &policy))
        .await?
        .map_err(AppError::Invalid)
}

/// Publishes (after checking again), deprecates or retires a version.
pub async fn apply(
    state: &AppState,
    user: &CurrentUser,
    (slug, version): (&str, &str),
    action: &str,
) -> Result<(VersionState, VersionState), AppError> {
    let transition = Transition::parse(action).ok_or(AppError::NotFound)?;
    let stored = store::get(&state.db, slug, version)
        .await?
        .ok_or(AppError::NotFound)?;
    if transition == Transition::Publish && stored.state == VersionState::Draft {
        let semver = Semver::parse(version).map_err(|e| AppError::BadRequest(e.to_string()))?;
        let previous = store::previous(&state.db, slug, semver).await?;
        checked(state, slug, &stored.source, previous.map(|p| p.source)).await?;
    }
    let mut tx = state.db.begin().await?;
    let before = store::transition(&mut tx, (slug, version), transition, &Actor::of(user)).await?;
    tx.commit().await?;
    Ok((before, transition.to()))
}

async fn index(State(state): State<AppState>, user: CurrentUser) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let mut blueprints: Vec<SlugRow> = Vec::new();
    for (slug, version, state_) in store::summary(&state.db).await? {
        match blueprints.last_mut() {
            Some(row) if row.slug == slug => row.versions.push((version, state_)),
            _ => blueprints.push(SlugRow {
                slug,
                versions: vec![(version, state_)],
            }),
        }
    }
    render(AdminIndexPage {
        layout: Layout::new(state.gate.as_ref(), &user, "admin").await?,
        blueprints,
    })
}

async fn blueprint_page(
    state: &AppState,
    user: &CurrentUser,
    slug: &str,
    errors: Vec<String>,
) -> Result<AdminBlueprintPage, AppError> {
    let versions = store::list(&state.db, slug)
        .await?
        .into_iter()
        .map(|v| VersionRow {
            digest_short: v.digest.chars().take(12).collect(),
            created: When::at(v.created_at).utc,
            version: v.version,
            state: v.state.to_string(),
            origin: v.origin,
        })
        .collect();
    Ok(AdminBlueprintPage {
        layout: Layout::new(state.gate.as_ref(), user, "admin").await?,
        slug: slug.to_string(),
        versions,
        errors,
    })
}

async fn blueprint(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(slug): Path<String>,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    let page = blueprint_page(&state, &user, &slug, Default::default()).await?;
    if page.versions.is_empty() && !super::manifest::is_slug(&slug) {
        return Err(AppError::NotFound);
    }
    render(page)
}

/// The upload form's two files (`manifest`: blueprint.toml, `template`: template.json.j2).
async fn read_files(mut form: Multipart) -> Result<(String, String), AppError> {
    let (mut manifest, mut template) = (String::new(), String::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| AppError::BadRequest(format!("the upload form is unreadable: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let target = match name.as_str() {
            "manifest" => &mut manifest,
            "template" => &mut template,
            _ => continue,
        };
        *target = field.text().await.map_err(|e| {
            AppError::BadRequest(format!("{name}: not readable as UTF-8 text: {e}"))
        })?;
    }
    Ok((manifest, template))
}

async fn upload_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(slug): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, AppError> {
    // Admin first: the body is read only for admins.
    require_admin(&user)?;
    let form = Multipart::from_request(request, &state)
        .await
        .map_err(|e| AppError::BadRequest(format!("send the two files as a form upload: {e}")))?;
    let (manifest, template) = read_files(form).await?;
    let mut errors = Vec::new();
    if manifest.trim().is_empty() {
        errors.push("manifest: choose the version's blueprint.toml".to_string());
    }
    if template.trim().is_empty() {
        errors.push("template: choose the version's template.json.j2".to_string());
    }
    if !errors.is_empty() {
        let page = blueprint_page(&state, &user, &slug, errors).await?;
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(page)?).into_response());
    }
    let input = UploadInput {
        manifest,
        template,
        files: Default::default(),
    };
    let (status, errors) = match upload(&state, &user, &slug, input).await {
        Ok(v) => {
            let to = format!("/admin/blueprints/{slug}/versions/{}", v.version);
            return Ok(Redirect::to(&to).into_response());
        }
        Err(AppError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        ),
        Err(AppError::Conflict(m)) => (StatusCode::CONFLICT, vec![m]),
        Err(e) => return Err(e),
    };
    let page = blueprint_page(&state, &user, &slug, errors).await?;
    Ok((status, render(page)?).into_response())
}

/// The parameters as lines `name: kind, defaults` (also what the parameter diff compares).
fn parameter_rows(bp: &Blueprint) -> Vec<(String, String, String)> {
    bp.parameters
        .iter()
        .map(|p| {
            let defaults: Vec<String> = bp
                .classes
                .iter()
                .filter_map(|c| p.default_for(*c).map(|d| format!("{c}={d}")))
                .collect();
            let kind = match &p.kind {
                super::ParamKind::Boolean => "boolean".to_string(),
                super::ParamKind::Cidr => "cidr".to_string(),
                super::ParamKind::Choice(o) => format!(
                    "choice ({})",
                    o.iter()
                        .map(|(v, _)| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                super::ParamKind::Integer { min, max } => format!("integer {min}..{max}"),
                super::ParamKind::String { max_len, .. } => format!("string (≤ {max_len})"),
            };
            (p.name.clone(), kind, defaults.join(", "))
        })
        .collect()
}

fn diff(old: &str, new: &str, (a, b): (&str, &str)) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(a, b)
        .to_string()
}

async fn version_page(
    state: &AppState,
    user: &CurrentUser,
    (slug, version): (&str, &str),
    errors: Vec<String>,
) -> Result<AdminVersionPage, AppError> {
    let stored = store::get(&state.db, slug, version)
        .await?
        .ok_or(AppError::NotFound)?;
    let bp = state.library.compile(&stored)?;
    let parameters = parameter_rows(&bp);
    let lines = |rows: &[(String, String, String)]| {
        rows.iter()
            .map(|(n, k, d)| format!("{n}: {k}; defaults {d}\n"))
            .collect::<String>()
    };
    let semver = Semver::parse(version).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let previous = store::previous(&state.db, slug, semver).await?;
    let (mut template_diff, mut parameter_diff) = (String::new(), String::new());
    if let Some(prev) = &previous {
        let names = (prev.version.as_str(), version);
        template_diff = diff(&prev.source.template, &stored.source.template, names);
        let old = state.library.compile(prev)?;
        parameter_diff = diff(&lines(&parameter_rows(&old)), &lines(&parameters), names);
    }
    let actions = match stored.state {
        VersionState::Draft => vec![("publish", "Publish")],
        VersionState::Published => vec![("deprecate", "Deprecate")],
        VersionState::Deprecated => vec![("retire", "Retire")],
        VersionState::Retired => vec![],
    };
    Ok(AdminVersionPage {
        layout: Layout::new(state.gate.as_ref(), user, "admin").await?,
        slug: slug.to_string(),
        version: version.to_string(),
        state: stored.state.to_string(),
        digest: stored.digest.clone(),
        origin: stored.origin.clone(),
        created: When::at(stored.created_at).utc,
        parameters,
        template: stored.source.template.clone(),
        previous: previous.map(|p| p.version),
        template_diff,
        parameter_diff,
        actions: actions
            .into_iter()
            .map(|(a, l)| (a.to_string(), l.to_string()))
            .collect(),
        errors,
    })
}

async fn version(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((slug, version)): Path<(String, String)>,
) -> Result<Html<String>, AppError> {
    require_admin(&user)?;
    render(version_page(&state, &user, (&slug, &version), Vec::new()).await?)
}

async fn transition_form(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((slug, version, action)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    require_admin(&user)?;
    let (status, errors) = match apply(&state, &user, (&slug, &version), &action).await {
        Ok(_) => {
            let to = format!("/admin/blueprints/{slug}/versions/{version}");
            return Ok(Redirect::to(&to).into_response());
        }
        Err(AppError::Invalid(errors)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            errors
                .into_iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        ),
        Err(AppError::Conflict(m)) => (StatusCode::CONFLICT, vec![m]),
        Err(e) => return Err(e),
    };
    let page = version_page(&state, &user, (&slug, &version), errors).await?;
    Ok((status, render(page)?).into_response())
}

fn version_json(v: &StoredVersion) -> serde_json::Value {
    serde_json::json!({
        "slug": v.slug, "version": v.version, "state": v.state, "digest": v.digest,
        "source": v.origin, "created_at": v.created_at,
    })
}

async fn list_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let versions: Vec<serde_json::Value> = store::list(&state.db, &slug)
        .await
        .map_err(AppError::from)?
        .iter()
        .filter(|v| {
            user.roles.admin
                || matches!(v.state, VersionState::Published | VersionState::Deprecated)
        })
        .map(version_json)
        .collect();
    if versions.is_empty() {
        return Err(AppError::NotFound.into());
    }
    Ok(Json(
        serde_json::json!({ "slug": slug, "versions": versions }),
    ))
}

async fn upload_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // Admin first, so that others learn nothing from how their body is answered.
    require_admin_api(&user)?;
    let input: UploadInput = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("the body is not an upload: {e}")))?;
    let stored = upload(&state, &user, &slug, input).await?;
    Ok((StatusCode::CREATED, Json(version_json(&stored))).into_response())
}

async fn transition_api(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Path((slug, version, action)): Path<(String, String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    require_admin_api(&user)?;
    let (before, after) = apply(&state, &user, (&slug, &version), &action).await?;
    Ok(Json(serde_json::json!({
        "slug": slug, "version": version, "before": before, "state": after,
    })))
}
