//! The address plan as a network request meets it: a block proposed from the configured pools
//! when none is typed, and a refusal naming the environment a typed block overlaps. The
//! reservation itself happens when the request is stored ([`store::addresses::reserve`]).

use super::input::Placement;
use super::store::addresses::{self, StackKey};
use crate::catalog::cidr::Cidr;
use crate::catalog::{Blueprint, FieldError, Kind, ParamKind};
use crate::config::Config;
use crate::error::AppError;
use crate::ids::EnvClass;
use crate::state::AppState;

/// The pools a network of `class` in `region` takes its block from: the region's own first.
pub fn pools(config: &Config, class: EnvClass, region: &str) -> Vec<(Cidr, u8)> {
    let matching = |regional: bool| {
        config
            .address_pools
            .iter()
            .filter(move |p| p.class == class && p.region.is_some() == regional)
            .filter(move |p| !regional || p.region.as_deref() == Some(region))
            .filter_map(|p| Cidr::parse(&p.cidr).ok().map(|c| (c, p.prefix)))
    };
    matching(true).chain(matching(false)).collect()
}

/// The first block of the pools that overlaps no block in use.
pub async fn propose(
    state: &AppState,
    class: EnvClass,
    stack: StackKey<'_>,
) -> Result<Option<Cidr>, AppError> {
    for (pool, prefix) in pools(&state.config, class, stack.region) {
        let used: Vec<Cidr> = addresses::in_use(&state.db, &pool, stack)
            .await?
            .iter()
            .filter_map(|t| Cidr::parse(&t.cidr).ok())
            .collect();
        if let Some(free) = pool
            .blocks(prefix)
            .find(|b| !used.iter().any(|u| u.overlaps(b)))
        {
            return Ok(Some(free));
        }
    }
    Ok(None)
}

/// The block a network gets when none is typed: the stack's `current` one (an update), else the
/// next free block of the pools.
pub async fn own_or_next(
    state: &AppState,
    current: Option<&str>,
    class: EnvClass,
    stack: StackKey<'_>,
) -> Result<Option<Cidr>, AppError> {
    match current.and_then(|c| Cidr::parse(c).ok()) {
        Some(own) => Ok(Some(own)),
        None => propose(state, class, stack).await,
    }
}

/// A network's address parameter: the blueprint's first CIDR parameter.
pub fn address_param(blueprint: &Blueprint) -> Option<&str> {
    if blueprint.kind != Kind::Environment {
        return None;
    }
    blueprint
        .parameters
        .iter()
        .find(|p| p.kind == ParamKind::Cidr)
        .map(|p| p.name.as_str())
}

/// For a network: fills its address parameter when it was left blank (an existing stack's own
/// block, or a proposal from the pools), and returns the parameter and the block the request
/// asks for (`None` for other blueprints, or when the typed value is not a block: rendering
/// reports that).
pub(super) async fn fill(
    state: &AppState,
    (blueprint, at, stack): (&Blueprint, &Placement, StackKey<'_>),
    current: Option<&str>,
    params: &mut std::collections::BTreeMap<String, String>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<(String, Cidr)>, AppError> {
    let Some(name) = address_param(blueprint) else {
        return Ok(None);
    };
    let typed = params.get(name).map(|v| v.trim()).unwrap_or_default();
    if typed.is_empty() {
        match own_or_next(state, current, at.account.env_class, stack).await? {
            Some(block) => {
                params.insert(name.to_string(), block.to_string());
            }
            None => {
                errors.push(FieldError::new(
                    name,
                    format!(
                        "The address plan has no free block left for {} networks in {}: type \
                         a block, or ask the platform team to add a pool.",
                        at.account.env_class, at.region
                    ),
                ));
                return Ok(None);
            }
        }
    }
    let block = params.get(name).and_then(|v| Cidr::parse(v).ok());
    Ok(block.map(|b| (name.to_string(), b)))
}

/// Refuses a block that overlaps one in use, naming its environment.
pub async fn check(
    state: &AppState,
    (param, block): (&str, &Cidr),
    stack: StackKey<'_>,
    errors: &mut Vec<FieldError>,
) -> Result<(), AppError> {
    if let Some(taken) = addresses::in_use(&state.db, block, stack).await?.first() {
        errors.push(FieldError::new(param, taken.refusal(block)));
    }
    Ok(())
}
