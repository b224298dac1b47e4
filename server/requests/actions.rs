//! What people do to requests, shared by the pages and the JSON API: submit. (Deciding and
//! cancelling, which touch approvals and the deployment queue, live in `approvals`.)

use crate::audit::{self, Actor, Entry};
use crate::catalog::FieldError;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::CurrentUser;

use super::input::{NewRequest, Prepared, prepare};
use super::{RequestStatus, Transition, store};

/// Validates, renders and policy-checks the input, then stores the request (its change set is
/// prepared next) with its audit record. Returns its id and number.
pub async fn submit(
    state: &AppState,
    user: &CurrentUser,
    input: &NewRequest,
) -> Result<(String, i64), AppError> {
    let p = prepare(state, user, input).await?;
    if !p.policy.passed {
        let failed: Vec<String> = p
            .policy
            .results
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule.clone())
            .collect();
        return Err(AppError::Invalid(vec![FieldError::new(
            "policy",
            format!(
                "The rendered template fails these policy rules: {}. Change the parameters or \
                 ask the platform team.",
                failed.join(", ")
            ),
        )]));
    }
    record_submission(state, user, &p).await
}

/// Stores a prepared, policy-passing request with its audit record and queues the creation of
/// its change set, in one transaction: approvers see the request once the change set is ready.
/// Returns its id and number.
pub async fn record_submission(
    state: &AppState,
    user: &CurrentUser,
    p: &Prepared,
) -> Result<(String, i64), AppError> {
    let status = RequestStatus::Draft
        .apply(Transition::Submit)
        .map_err(anyhow::Error::from)?;
    let policy = serde_json::json!({
        "passed": p.policy.passed,
        "results": p.policy.results.iter().map(|r| serde_json::json!({
            "rule": r.rule, "passed": r.passed, "messages": r.messages,
        })).collect::<Vec<_>>(),
    });
    let mut tx = state.db.begin().await?;
    let (id, number) = store::insert(&mut tx, p, &user.id, status, &policy).await?;
    if let Some(block) = &p.address {
        // Checked again under the plan's lock: a concurrent request may have taken it since.
        let stack = store::addresses::StackKey {
            account_id: p.account.id.as_str(),
            region: &p.region,
            stack_name: &p.stack_name,
        };
        if let Some(taken) = store::addresses::reserve(&mut tx, &id, block, stack).await? {
            tx.rollback().await?;
            let param = super::addresses::address_param(&p.blueprint).unwrap_or("vpc_cidr");
            return Err(AppError::Invalid(vec![FieldError::new(
                param,
                taken.refusal(block),
            )]));
        }
    }
    let request = store::lock(&mut tx, state.db.backend(), &id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the request just stored is missing"))?;
    let deployment_id = crate::deployments::store::enqueue(&mut tx, &request).await?;
    let entry = Entry::new(&Actor::of(user), "request.submitted", "request", id.clone())
        .detail(serde_json::json!({
            "number": number, "team": p.team, "blueprint": p.blueprint.slug,
            "blueprint_version": p.blueprint.version, "account_id": p.account.id,
            "region": p.region, "stack_name": p.stack_name, "params": p.rendered.params,
            "environment_id": p.environment.as_ref().map(|e| &e.id),
            "address_block": p.address.as_ref().map(|c| c.to_string()),
            "template_digest": p.rendered.digest, "content_hash": p.content_hash,
            "deployment_id": deployment_id,
        }))
        .source_ip(user.source_ip.clone());
    audit::store::append(&mut tx, entry).await?;
    tx.commit().await?;
    tracing::info!(request.id = %id, request.number = number, "A request was submitted; its change set is being prepared.");
    Ok((id, number))
}
