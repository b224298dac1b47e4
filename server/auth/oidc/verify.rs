//! ID-token verification: the verifier (algorithms pinned, no MAC key, `iat` window, `exp`
//! without leeway) and the checks `openidconnect` leaves to us (`azp`, `sub`, `at_hash`).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, ClaimsVerificationError, ClientId, IdToken,
    IdTokenClaims, IdTokenVerifier, IssuerUrl, Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Deserializer, Serialize};
use subtle::ConstantTimeEq;

use super::{
    ALLOWED_ID_TOKEN_ALGS, IAT_MAX_AGE_SECS, IAT_MAX_FUTURE_SECS, Identity, LoginError,
    MAX_SUBJECT_LEN,
};

/// The `groups` claim, which not every IdP sends. Accepts an array of strings or a single string.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(super) struct GroupsClaim {
    #[serde(default, deserialize_with = "string_or_seq")]
    pub(super) groups: Vec<String>,
}
impl AdditionalClaims for GroupsClaim {}

fn string_or_seq<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
        Null(()),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
        OneOrMany::Null(()) => Vec::new(),
    })
}

pub(super) type RpIdToken = IdToken<
    GroupsClaim,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub(super) type RpIdTokenClaims = IdTokenClaims<GroupsClaim, CoreGenderClaim>;
type RpVerifier = IdTokenVerifier<'static, CoreJsonWebKey>;

/// What a verified ID token is checked against besides issuer, audience and keys.
pub(super) struct Checks<'a> {
    pub(super) nonce: &'a Nonce,
    pub(super) access_token: Option<&'a AccessToken>,
    pub(super) max_age: Option<Duration>,
    pub(super) now: DateTime<Utc>,
}

/// The ID-token verifier: algorithms pinned, no client secret (so no MAC key exists), `iat`
/// window enforced, `exp` against `now` without leeway. Signature checking stays on.
fn id_token_verifier(
    issuer: &IssuerUrl,
    client_id: &ClientId,
    keys: &CoreJsonWebKeySet,
    now: DateTime<Utc>,
) -> RpVerifier {
    IdTokenVerifier::new_public_client(client_id.clone(), issuer.clone(), keys.clone())
        .set_allowed_algs(ALLOWED_ID_TOKEN_ALGS)
        .set_time_fn(move || now)
        .set_issue_time_verifier_fn(move |iat| check_iat(iat, now))
}

/// `iat` may be at most [`IAT_MAX_FUTURE_SECS`] ahead of `now` and at most
/// [`IAT_MAX_AGE_SECS`] behind it.
pub(super) fn check_iat(iat: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), String> {
    if iat > now + TimeDelta::seconds(IAT_MAX_FUTURE_SECS) {
        Err("iat: issued in the future".to_owned())
    } else if iat < now - TimeDelta::seconds(IAT_MAX_AGE_SECS) {
        Err("iat: issued too long ago".to_owned())
    } else {
        Ok(())
    }
}

/// OpenID Connect Core §3.1.3.7 steps 4–5, which `openidconnect` leaves out: with several
/// audiences `azp` must be present; if present it must be our client id.
pub(super) fn check_azp(
    audiences: &[openidconnect::Audience],
    azp: Option<&ClientId>,
    client_id: &ClientId,
) -> Result<(), LoginError> {
    match azp {
        Some(azp) if azp.as_str() == client_id.as_str() => Ok(()),
        Some(_) => Err(LoginError::AzpMismatch),
        None if audiences.len() > 1 => Err(LoginError::AzpMismatch),
        None => Ok(()),
    }
}

/// `sub` must be 1 to [`MAX_SUBJECT_LEN`] characters.
fn check_subject(sub: &str) -> Result<(), LoginError> {
    if sub.is_empty() || sub.chars().count() > MAX_SUBJECT_LEN {
        Err(LoginError::SubjectInvalid(None))
    } else {
        Ok(())
    }
}

/// Sorts a refusal of the library's verifier into our reasons, keeping it as the source.
fn claims_error(err: ClaimsVerificationError) -> LoginError {
    match err {
        ClaimsVerificationError::Expired(ref msg) if msg.starts_with("iat") => {
            LoginError::IssuedAtOutOfRange(err)
        }
        ClaimsVerificationError::Expired(_) => LoginError::TokenExpired(err),
        ClaimsVerificationError::InvalidAudience(_) => LoginError::AudienceMismatch(err),
        ClaimsVerificationError::InvalidIssuer(_) => LoginError::TokenIssuerMismatch(err),
        ClaimsVerificationError::InvalidNonce(_) => LoginError::NonceMismatch(err),
        ClaimsVerificationError::InvalidSubject(_) => LoginError::SubjectInvalid(Some(err)),
        ClaimsVerificationError::InvalidAuthTime(_) => LoginError::AuthTimeTooOld(err),
        ClaimsVerificationError::SignatureVerification(e) => signature_error(e),
        ClaimsVerificationError::Unsupported(_) => LoginError::IdTokenInvalid {
            what: "unsupported token",
            source: Box::new(err),
        },
        _ => LoginError::IdTokenInvalid {
            what: "claims rejected",
            source: Box::new(err),
        },
    }
}

/// Sorts a signature failure into our reasons, keeping it as the source.
fn signature_error(err: SignatureVerificationError) -> LoginError {
    match err {
        SignatureVerificationError::NoMatchingKey => LoginError::UnknownSigningKey(err),
        SignatureVerificationError::DisallowedAlg(_)
        | SignatureVerificationError::NoSignature
        | SignatureVerificationError::UnsupportedAlg(_) => LoginError::AlgorithmNotAllowed(err),
        SignatureVerificationError::AmbiguousKeyId(_) => LoginError::IdTokenInvalid {
            what: "ambiguous signing key",
            source: Box::new(err),
        },
        _ => LoginError::SignatureInvalid(err),
    }
}

/// Verifies one ID token against one key set and turns it into an [`Identity`]: the library's
/// checks (signature, issuer, audience, times, nonce, `auth_time`), then ours (`azp`, `sub`,
/// `at_hash`).
pub(super) fn verify_id_token(
    id_token: &RpIdToken,
    issuer: &IssuerUrl,
    client_id: &ClientId,
    keys: &CoreJsonWebKeySet,
    checks: &Checks<'_>,
) -> Result<Identity, LoginError> {
    let verifier = id_token_verifier(issuer, client_id, keys, checks.now)
        .set_auth_time_verifier_fn(auth_time_check(checks.now, checks.max_age));
    let claims: &RpIdTokenClaims = id_token
        .claims(&verifier, checks.nonce)
        .map_err(claims_error)?;

    check_azp(claims.audiences(), claims.authorized_party(), client_id)?;
    check_subject(claims.subject().as_str())?;
    if let (Some(expected), Some(access_token)) = (claims.access_token_hash(), checks.access_token)
    {
        check_at_hash(id_token, &verifier, expected, access_token)?;
    }
    Ok(identity_from(issuer, claims))
}

/// With a `max_age`, `auth_time` must be present and no older than `max_age` (plus the clock
/// skew allowed for `iat`); without one, anything goes.
fn auth_time_check(
    now: DateTime<Utc>,
    max_age: Option<Duration>,
) -> impl Fn(Option<DateTime<Utc>>) -> Result<(), String> + Send + Sync + 'static {
    move |auth_time| match max_age {
        None => Ok(()),
        Some(max_age) => {
            let max = TimeDelta::from_std(max_age).unwrap_or(TimeDelta::MAX);
            match auth_time {
                Some(t) if now - t <= max + TimeDelta::seconds(IAT_MAX_FUTURE_SECS) => Ok(()),
                _ => Err("auth_time missing or too old".to_owned()),
            }
        }
    }
}

/// `at_hash` must be the hash of the access token we received, with the token's own algorithm
/// and key (constant-time comparison).
fn check_at_hash(
    id_token: &RpIdToken,
    verifier: &RpVerifier,
    expected: &AccessTokenHash,
    access_token: &AccessToken,
) -> Result<(), LoginError> {
    let alg = id_token
        .signing_alg()
        .map_err(LoginError::AlgorithmNotAllowed)?;
    let key = id_token
        .signing_key(verifier)
        .map_err(LoginError::UnknownSigningKey)?;
    let actual = AccessTokenHash::from_token(access_token, alg, key)
        .map_err(|e| LoginError::AccessTokenHashMismatch(Some(e)))?;
    if bool::from(actual.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(LoginError::AccessTokenHashMismatch(None))
    }
}

/// The claims the portal keeps, from a verified ID token.
fn identity_from(issuer: &IssuerUrl, claims: &RpIdTokenClaims) -> Identity {
    Identity {
        issuer: issuer.as_str().to_owned(),
        subject: claims.subject().as_str().to_owned(),
        email: claims.email().map(|e| e.as_str().to_owned()),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned()),
        groups: claims.additional_claims().groups.clone(),
        auth_time: claims.auth_time(),
        amr: claims
            .auth_method_refs()
            .map(|methods| methods.iter().map(|m| m.as_str().to_owned()).collect())
            .unwrap_or_default(),
        acr: claims.auth_context_ref().map(|a| a.as_str().to_owned()),
    }
}
