//! Why a login or a groups check failed, and how the library's errors map onto that.

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{DiscoveryError, RequestTokenError, StandardErrorResponse};

/// Why a login (or the IdP configuration) was refused. [`LoginError::reason`] gives a stable
/// code for the audit record; the messages never contain token material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The settings themselves are unusable (malformed URL and the like).
    #[error("invalid OIDC settings: {0}")]
    InvalidSettings(&'static str),
    /// The IdP did not answer (connection refused, timeout, TLS failure).
    #[error("the identity provider could not be reached")]
    IdpUnreachable,
    /// The discovery document or JWKS could not be fetched or parsed.
    #[error("the identity provider's metadata is unusable: {0}")]
    DiscoveryFailed(String),
    /// The discovery document names a different issuer than the configured one (A13).
    #[error(
        "the identity provider's metadata names issuer `{reported}`, not the configured `{configured}`"
    )]
    IssuerMismatch {
        /// The issuer we were configured with.
        configured: String,
        /// The issuer the metadata reported.
        reported: String,
    },
    /// An IdP endpoint uses plain http on a non-loopback host.
    #[error("the identity provider's {0} is not served over https")]
    InsecureEndpoint(&'static str),
    /// The [`PendingLogin`] is older than [`PENDING_LOGIN_MAX_AGE_SECS`].
    #[error("the login took too long; start again")]
    LoginExpired,
    /// The token endpoint refused the code (expired, replayed, wrong PKCE verifier, wrong client
    /// credentials...) or answered with something that is not a token response.
    #[error("the authorization code could not be exchanged: {0}")]
    TokenExchangeFailed(String),
    /// The token response carried no ID token.
    #[error("the token response contained no ID token")]
    IdTokenMissing,
    /// The ID token is signed with an algorithm outside [`ALLOWED_ID_TOKEN_ALGS`] or unsigned.
    #[error("the ID token's signature algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The ID token's signature does not verify.
    #[error("the ID token's signature is invalid")]
    SignatureInvalid,
    /// No key in the IdP's JWKS matches the ID token, even after a refetch.
    #[error("the ID token is signed with an unknown key")]
    UnknownSigningKey,
    /// The ID token's `iss` is not the configured issuer.
    #[error("the ID token was issued by another issuer")]
    TokenIssuerMismatch,
    /// The ID token's `aud` does not contain our client id, or contains untrusted audiences.
    #[error("the ID token is not intended for this client")]
    AudienceMismatch,
    /// The ID token's `azp` is not our client id, or is missing with several audiences.
    #[error("the ID token's authorized party is wrong or missing")]
    AzpMismatch,
    /// The ID token has expired.
    #[error("the ID token has expired")]
    TokenExpired,
    /// The ID token's `iat` is too far in the future or too old.
    #[error("the ID token's issue time is out of range")]
    IssuedAtOutOfRange,
    /// The ID token's `nonce` is missing or not the one we sent.
    #[error("the ID token's nonce does not match this login")]
    NonceMismatch,
    /// `sub` is empty or too long.
    #[error("the ID token's subject is missing or too long")]
    SubjectInvalid,
    /// `at_hash` does not match the access token.
    #[error("the ID token's access-token hash does not match")]
    AccessTokenHashMismatch,
    /// `auth_time` is missing or too old for the requested `max_age`.
    #[error("the authentication is too old for this login")]
    AuthTimeTooOld,
    /// Any other reason the ID token was refused.
    #[error("the ID token is invalid: {0}")]
    IdTokenInvalid(&'static str),
}

impl LoginError {
    /// A stable, machine-readable code for the audit record (`auth.login_failed`).
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::InvalidSettings(_) => "invalid_settings",
            LoginError::IdpUnreachable => "idp_unreachable",
            LoginError::DiscoveryFailed(_) => "discovery_failed",
            LoginError::IssuerMismatch { .. } => "issuer_mismatch",
            LoginError::InsecureEndpoint(_) => "insecure_endpoint",
            LoginError::LoginExpired => "login_expired",
            LoginError::TokenExchangeFailed(_) => "token_exchange_failed",
            LoginError::IdTokenMissing => "id_token_missing",
            LoginError::AlgorithmNotAllowed => "alg_not_allowed",
            LoginError::SignatureInvalid => "signature_invalid",
            LoginError::UnknownSigningKey => "unknown_signing_key",
            LoginError::TokenIssuerMismatch => "id_token_issuer_mismatch",
            LoginError::AudienceMismatch => "aud_mismatch",
            LoginError::AzpMismatch => "azp_mismatch",
            LoginError::TokenExpired => "id_token_expired",
            LoginError::IssuedAtOutOfRange => "iat_out_of_range",
            LoginError::NonceMismatch => "nonce_mismatch",
            LoginError::SubjectInvalid => "sub_invalid",
            LoginError::AccessTokenHashMismatch => "at_hash_mismatch",
            LoginError::AuthTimeTooOld => "auth_time_too_old",
            LoginError::IdTokenInvalid(_) => "id_token_invalid",
        }
    }
}

/// Why the IdP did not confirm a user's groups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupsError {
    /// The IdP refused the token (expired, revoked) or answered for another subject: the groups
    /// cannot be confirmed with it any more.
    #[error("the identity provider refused to confirm the user's groups: {0}")]
    Rejected(&'static str),
    /// The IdP could not be asked (unreachable, an error on its side, no userinfo endpoint).
    #[error("the identity provider could not be asked for the user's groups")]
    Unavailable,
}

/// Maps a JWKS fetch failure.
pub(super) fn discovery_error<RE: std::error::Error + 'static>(
    err: DiscoveryError<RE>,
) -> LoginError {
    match err {
        DiscoveryError::Request(_) => LoginError::IdpUnreachable,
        DiscoveryError::Response(status, _, _) => {
            LoginError::DiscoveryFailed(format!("JWKS: HTTP status {status}"))
        }
        DiscoveryError::Parse(e) => {
            LoginError::DiscoveryFailed(format!("JWKS: malformed at `{}`", e.path()))
        }
        _ => LoginError::DiscoveryFailed("JWKS: unexpected response".into()),
    }
}

pub(super) fn token_error<RE: std::error::Error + 'static>(
    err: RequestTokenError<RE, StandardErrorResponse<CoreErrorResponseType>>,
) -> LoginError {
    match err {
        RequestTokenError::Request(_) => LoginError::IdpUnreachable,
        // Only the OAuth error code: the description is free text from the IdP.
        RequestTokenError::ServerResponse(e) => {
            LoginError::TokenExchangeFailed(e.error().as_ref().chars().take(64).collect())
        }
        RequestTokenError::Parse(_, _) => {
            LoginError::TokenExchangeFailed("malformed token response".into())
        }
        RequestTokenError::Other(_) => {
            LoginError::TokenExchangeFailed("unexpected token response".into())
        }
    }
}
