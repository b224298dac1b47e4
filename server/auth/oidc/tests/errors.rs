//! Login errors: the audit codes, the messages, and the causes they keep.

use std::error::Error as _;

use openidconnect::core::CoreProviderMetadata;
use openidconnect::http::StatusCode;
use openidconnect::{
    ClaimsVerificationError, DiscoveryError, RequestTokenError, SignatureVerificationError,
};

use super::super::error::{discovery_error, token_error};
use super::*;

fn cause() -> Cause {
    Box::new(std::io::Error::other("x"))
}

fn claims_refused() -> ClaimsVerificationError {
    ClaimsVerificationError::Other("x".to_owned())
}

fn signature_refused() -> SignatureVerificationError {
    SignatureVerificationError::Other("x".to_owned())
}

#[test]
fn reasons_are_distinct_snake_case_codes() {
    let all = [
        LoginError::InvalidSettings {
            what: "x",
            source: None,
        },
        LoginError::IdpUnreachable(cause()),
        LoginError::DiscoveryFailed(MetadataError::TooLarge),
        LoginError::IssuerMismatch {
            configured: "a".into(),
            reported: "b".into(),
        },
        LoginError::InsecureEndpoint("x"),
        LoginError::LoginExpired,
        LoginError::TokenExchangeFailed(TokenExchangeError::EmptyCode),
        LoginError::IdTokenMissing,
        LoginError::AlgorithmNotAllowed(signature_refused()),
        LoginError::SignatureInvalid(signature_refused()),
        LoginError::UnknownSigningKey(signature_refused()),
        LoginError::TokenIssuerMismatch(claims_refused()),
        LoginError::AudienceMismatch(claims_refused()),
        LoginError::AzpMismatch,
        LoginError::TokenExpired(claims_refused()),
        LoginError::IssuedAtOutOfRange(claims_refused()),
        LoginError::NonceMismatch(claims_refused()),
        LoginError::SubjectInvalid(None),
        LoginError::AccessTokenHashMismatch(None),
        LoginError::AuthTimeTooOld(claims_refused()),
        LoginError::IdTokenInvalid {
            what: "x",
            source: cause(),
        },
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(seen.insert(r), "duplicate reason {r}");
        assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r}");
    }
}

#[test]
fn metadata_errors_keep_their_cause_and_their_message() {
    let parse = serde_json::from_str::<CoreProviderMetadata>("{").unwrap_err();
    let err = LoginError::DiscoveryFailed(MetadataError::Malformed(parse));
    assert_eq!(err.reason(), "discovery_failed");
    assert_eq!(
        err.to_string(),
        "the identity provider's metadata is unusable: malformed document (line 1, column 1)"
    );
    assert!(err.source().is_some(), "the parse error is kept");

    let jwks = discovery_error(DiscoveryError::Response(
        StatusCode::NOT_FOUND,
        Vec::new(),
        "not found".to_owned(),
    ));
    assert_eq!(jwks.reason(), "discovery_failed");
    assert_eq!(
        jwks.to_string(),
        "the identity provider's metadata is unusable: JWKS: HTTP status 404 Not Found"
    );
    assert!(jwks.source().is_some(), "the JWKS error is kept");
}

#[test]
fn token_errors_name_the_oauth_code_only_and_keep_the_answer() {
    let refused = token_error(RequestTokenError::ServerResponse(
        openidconnect::StandardErrorResponse::new(
            openidconnect::core::CoreErrorResponseType::InvalidGrant,
            Some("free text from the IdP".to_owned()),
            None,
        ),
    ));
    assert_eq!(refused.reason(), "token_exchange_failed");
    assert_eq!(
        refused.to_string(),
        "the authorization code could not be exchanged: invalid_grant"
    );
    match &refused {
        LoginError::TokenExchangeFailed(TokenExchangeError::Refused(answer)) => {
            assert_eq!(
                answer.error_description().map(String::as_str),
                Some("free text from the IdP")
            );
        }
        other => panic!("{other:?}"),
    }

    let other = token_error(RequestTokenError::Other("odd answer".to_owned()));
    assert_eq!(
        other.to_string(),
        "the authorization code could not be exchanged: unexpected token response"
    );
    assert!(other.source().is_some(), "the library's error is kept");
}

#[test]
fn id_token_refusals_keep_the_verifiers_error() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let c = claims(now).set_nonce(Some(Nonce::new("someone-elses".to_owned())));
    let err = verify_at(&sign(c, &a), &keys, now).unwrap_err();
    assert_eq!(err.reason(), "nonce_mismatch");
    assert_eq!(
        err.to_string(),
        "the ID token's nonce does not match this login"
    );
    let source = err.source().expect("the verifier's error is kept");
    assert!(!source.to_string().contains("someone-elses"), "{source}");

    let b = key(KEY_B, Some("b"));
    let err = verify_at(&sign(claims(now), &b), &keys, now).unwrap_err();
    assert_eq!(err.reason(), "unknown_signing_key");
    assert!(err.source().is_some());
}
