//! Why a login or a groups check failed, and how the library's errors map onto that.
//!
//! Each error keeps what caused it as its `source` (the HTTP, parse or verification error of
//! the library underneath), for diagnosis. The messages themselves stay short and never carry
//! token material; neither do the kept sources (a token response that fails to parse is not
//! kept, only the parse error).

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{
    ClaimsVerificationError, DiscoveryError, HttpClientError, RequestTokenError,
    SignatureVerificationError, SigningError, StandardErrorResponse, UserInfoError,
};

/// The error of the HTTP client `openidconnect` uses to talk to the IdP.
pub(super) type HttpError = HttpClientError<reqwest::Error>;

/// An underlying error, kept as the source of ours.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a login (or the IdP configuration) was refused. [`LoginError::reason`] gives a stable
/// code for the audit record; the messages never contain token material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The settings themselves are unusable (malformed URL and the like).
    #[error("invalid OIDC settings: {what}")]
    InvalidSettings {
        /// Which setting is wrong, and how.
        what: &'static str,
        /// The parse or build error behind it, if there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The IdP did not answer (connection refused, timeout, TLS failure).
    #[error("the identity provider could not be reached")]
    IdpUnreachable(#[source] Cause),
    /// The discovery document or JWKS could not be fetched or parsed.
    #[error(transparent)]
    DiscoveryFailed(MetadataError),
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
    /// The [`PendingLogin`](super::PendingLogin) is older than
    /// [`PENDING_LOGIN_MAX_AGE_SECS`](super::PENDING_LOGIN_MAX_AGE_SECS).
    #[error("the login took too long; start again")]
    LoginExpired,
    /// The token endpoint refused the code (expired, replayed, wrong PKCE verifier, wrong client
    /// credentials...) or answered with something that is not a token response.
    #[error(transparent)]
    TokenExchangeFailed(TokenExchangeError),
    /// The token response carried no ID token.
    #[error("the token response contained no ID token")]
    IdTokenMissing,
    /// The ID token is signed with an algorithm outside
    /// [`ALLOWED_ID_TOKEN_ALGS`](super::ALLOWED_ID_TOKEN_ALGS) or unsigned.
    #[error("the ID token's signature algorithm is not allowed")]
    AlgorithmNotAllowed(#[source] SignatureVerificationError),
    /// The ID token's signature does not verify.
    #[error("the ID token's signature is invalid")]
    SignatureInvalid(#[source] SignatureVerificationError),
    /// No key in the IdP's JWKS matches the ID token, even after a refetch.
    #[error("the ID token is signed with an unknown key")]
    UnknownSigningKey(#[source] SignatureVerificationError),
    /// The ID token's `iss` is not the configured issuer.
    #[error("the ID token was issued by another issuer")]
    TokenIssuerMismatch(#[source] ClaimsVerificationError),
    /// The ID token's `aud` does not contain our client id, or contains untrusted audiences.
    #[error("the ID token is not intended for this client")]
    AudienceMismatch(#[source] ClaimsVerificationError),
    /// The ID token's `azp` is not our client id, or is missing with several audiences.
    #[error("the ID token's authorized party is wrong or missing")]
    AzpMismatch,
    /// The ID token has expired.
    #[error("the ID token has expired")]
    TokenExpired(#[source] ClaimsVerificationError),
    /// The ID token's `iat` is too far in the future or too old.
    #[error("the ID token's issue time is out of range")]
    IssuedAtOutOfRange(#[source] ClaimsVerificationError),
    /// The ID token's `nonce` is missing or not the one we sent.
    #[error("the ID token's nonce does not match this login")]
    NonceMismatch(#[source] ClaimsVerificationError),
    /// `sub` is empty or too long (our own check, no source) or refused by the library.
    #[error("the ID token's subject is missing or too long")]
    SubjectInvalid(#[source] Option<ClaimsVerificationError>),
    /// `at_hash` does not match the access token (no source), or the hash could not be computed.
    #[error("the ID token's access-token hash does not match")]
    AccessTokenHashMismatch(#[source] Option<SigningError>),
    /// `auth_time` is missing or too old for the requested `max_age`.
    #[error("the authentication is too old for this login")]
    AuthTimeTooOld(#[source] ClaimsVerificationError),
    /// Any other reason the ID token was refused.
    #[error("the ID token is invalid: {what}")]
    IdTokenInvalid {
        /// The reason, in a few words.
        what: &'static str,
        /// The verification error behind it.
        #[source]
        source: Cause,
    },
}

impl LoginError {
    /// A stable, machine-readable code for the audit record (`auth.login_failed`).
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::InvalidSettings { .. } => "invalid_settings",
            LoginError::IdpUnreachable(_) => "idp_unreachable",
            LoginError::DiscoveryFailed(_) => "discovery_failed",
            LoginError::IssuerMismatch { .. } => "issuer_mismatch",
            LoginError::InsecureEndpoint(_) => "insecure_endpoint",
            LoginError::LoginExpired => "login_expired",
            LoginError::TokenExchangeFailed(_) => "token_exchange_failed",
            LoginError::IdTokenMissing => "id_token_missing",
            LoginError::AlgorithmNotAllowed(_) => "alg_not_allowed",
            LoginError::SignatureInvalid(_) => "signature_invalid",
            LoginError::UnknownSigningKey(_) => "unknown_signing_key",
            LoginError::TokenIssuerMismatch(_) => "id_token_issuer_mismatch",
            LoginError::AudienceMismatch(_) => "aud_mismatch",
            LoginError::AzpMismatch => "azp_mismatch",
            LoginError::TokenExpired(_) => "id_token_expired",
            LoginError::IssuedAtOutOfRange(_) => "iat_out_of_range",
            LoginError::NonceMismatch(_) => "nonce_mismatch",
            LoginError::SubjectInvalid(_) => "sub_invalid",
            LoginError::AccessTokenHashMismatch(_) => "at_hash_mismatch",
            LoginError::AuthTimeTooOld(_) => "auth_time_too_old",
            LoginError::IdTokenInvalid { .. } => "id_token_invalid",
        }
    }
}

/// What is wrong with the IdP's discovery document or key set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The discovery document was answered with an error status.
    #[error("the identity provider's metadata is unusable: HTTP status {0}")]
    Status(reqwest::StatusCode),
    /// The discovery document is larger than we accept.
    #[error("the identity provider's metadata is unusable: document too large")]
    TooLarge,
    /// The discovery document is not provider metadata.
    #[error(
        "the identity provider's metadata is unusable: malformed document (line {}, column {})",
        .0.line(),
        .0.column()
    )]
    Malformed(#[source] serde_json::Error),
    /// The discovery document names no token endpoint.
    #[error("the identity provider's metadata is unusable: no token_endpoint")]
    NoTokenEndpoint,
    /// The key set (JWKS) was refused or is not a key set.
    #[error("the identity provider's metadata is unusable: JWKS: {}", jwks_problem(.0))]
    Jwks(#[source] DiscoveryError<HttpError>),
}

/// The short description of a key-set failure in [`MetadataError::Jwks`].
fn jwks_problem(err: &DiscoveryError<HttpError>) -> String {
    match err {
        DiscoveryError::Response(status, _, _) => format!("HTTP status {status}"),
        DiscoveryError::Parse(e) => format!("malformed at `{}`", e.path()),
        _ => "unexpected response".to_owned(),
    }
}

/// Why the authorization code could not be exchanged for tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenExchangeError {
    /// The callback carried an empty code; nothing was sent to the IdP.
    #[error("the authorization code could not be exchanged: empty code")]
    EmptyCode,
    /// The token endpoint answered with an OAuth error. The message names only the error code
    /// (the description is free text from the IdP); the whole answer is kept here.
    #[error("the authorization code could not be exchanged: {}", oauth_error_code(.0))]
    Refused(StandardErrorResponse<CoreErrorResponseType>),
    /// The answer is not a token response. Only the parse error is kept, not the body, which
    /// may hold tokens.
    #[error("the authorization code could not be exchanged: malformed token response")]
    Malformed(#[source] Cause),
    /// Any other unexpected answer.
    #[error("the authorization code could not be exchanged: unexpected token response")]
    Unexpected(#[source] Cause),
}

/// The OAuth error code of a refusal, cut to 64 characters.
fn oauth_error_code(response: &StandardErrorResponse<CoreErrorResponseType>) -> String {
    response.error().as_ref().chars().take(64).collect()
}

/// Why the IdP did not confirm a user's groups.
#[derive(Debug, thiserror::Error)]
pub enum GroupsError {
    /// The IdP refused the token (expired, revoked) or answered for another subject: the groups
    /// cannot be confirmed with it any more.
    #[error("the identity provider refused to confirm the user's groups: {why}")]
    Rejected {
        /// What the refusal was, in a few words.
        why: &'static str,
        /// The userinfo error behind it.
        #[source]
        source: Cause,
    },
    /// The IdP could not be asked (unreachable, an error on its side, no userinfo endpoint).
    #[error("the identity provider could not be asked for the user's groups")]
    Unavailable(#[source] Cause),
}

/// For `map_err`: the setting `what` is unusable because of the error given.
pub(super) fn invalid_settings<E>(what: &'static str) -> impl FnOnce(E) -> LoginError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| LoginError::InvalidSettings {
        what,
        source: Some(Box::new(e)),
    }
}

/// For `map_err`: the IdP could not be reached because of the error given.
pub(super) fn idp_unreachable<E>(e: E) -> LoginError
where
    E: std::error::Error + Send + Sync + 'static,
{
    LoginError::IdpUnreachable(Box::new(e))
}

/// Maps a JWKS fetch failure.
pub(super) fn discovery_error(err: DiscoveryError<HttpError>) -> LoginError {
    match err {
        DiscoveryError::Request(e) => idp_unreachable(e),
        other => LoginError::DiscoveryFailed(MetadataError::Jwks(other)),
    }
}

/// Maps a failed code exchange.
pub(super) fn token_error(
    err: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> LoginError {
    let failure = match err {
        RequestTokenError::Request(e) => return idp_unreachable(e),
        RequestTokenError::ServerResponse(response) => TokenExchangeError::Refused(response),
        // The body stays behind: it may hold tokens.
        RequestTokenError::Parse(e, _body) => TokenExchangeError::Malformed(Box::new(e)),
        other @ RequestTokenError::Other(_) => TokenExchangeError::Unexpected(Box::new(other)),
    };
    LoginError::TokenExchangeFailed(failure)
}

/// Maps a failed userinfo request: a refused token or an answer about someone else ends the
/// session's trust in its groups; anything else only means the IdP could not be asked.
pub(super) fn groups_error(err: UserInfoError<HttpError>) -> GroupsError {
    match err {
        UserInfoError::Response(status, _, _)
            if status.as_u16() == 401 || status.as_u16() == 403 =>
        {
            GroupsError::Rejected {
                why: "token refused",
                source: Box::new(err),
            }
        }
        UserInfoError::ClaimsVerification(_) => GroupsError::Rejected {
            why: "answer about another subject",
            source: Box::new(err),
        },
        _ => GroupsError::Unavailable(Box::new(err)),
    }
}
