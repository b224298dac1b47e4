//! Login errors: the audit codes.

use super::*;

#[test]
fn reasons_are_distinct_snake_case_codes() {
    let all = [
        LoginError::InvalidSettings("x"),
        LoginError::IdpUnreachable,
        LoginError::DiscoveryFailed("x".into()),
        LoginError::IssuerMismatch {
            configured: "a".into(),
            reported: "b".into(),
        },
        LoginError::InsecureEndpoint("x"),
        LoginError::LoginExpired,
        LoginError::TokenExchangeFailed("x".into()),
        LoginError::IdTokenMissing,
        LoginError::AlgorithmNotAllowed,
        LoginError::SignatureInvalid,
        LoginError::UnknownSigningKey,
        LoginError::TokenIssuerMismatch,
        LoginError::AudienceMismatch,
        LoginError::AzpMismatch,
        LoginError::TokenExpired,
        LoginError::IssuedAtOutOfRange,
        LoginError::NonceMismatch,
        LoginError::SubjectInvalid,
        LoginError::AccessTokenHashMismatch,
        LoginError::AuthTimeTooOld,
        LoginError::IdTokenInvalid("x"),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        let r = e.reason();
        assert!(seen.insert(r), "duplicate reason {r}");
        assert!(r.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{r}");
    }
}
