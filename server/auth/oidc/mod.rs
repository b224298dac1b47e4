//! OpenID Connect relying-party client: the authorization-code flow with PKCE (S256), `state`
//! and `nonce`, against any standard identity provider (IdP).
//!
//! This module is a pure library piece: no web framework, no database. The application
//!
//! 1. calls [`OidcClient::begin`], stores the returned [`PendingLogin`] server-side (single use,
//!    at most [`PENDING_LOGIN_MAX_AGE_SECS`] old, bound to the browser) and redirects the browser
//!    to the authorization URL;
//! 2. on the callback, looks the pending login up, checks the returned `state` with
//!    [`PendingLogin::state_matches`] (constant time), deletes the pending login, and calls
//!    [`OidcClient::finish`] with the `code`;
//! 3. keys the user on [`Identity::key`], i.e. `(issuer, subject)`, never on email or name.
//!
//! What [`OidcClient::finish`] checks, beyond what `openidconnect` does by default (OpenID
//! Connect Core §3.1.3.7, and section 1 of the security bars, A1–A13):
//!
//! - the ID token's signature algorithm is pinned to [`ALLOWED_ID_TOKEN_ALGS`] (asymmetric only,
//!   never `HS*` or `none`), whatever the IdP's metadata advertises; the verifier has no client
//!   secret, so no MAC key exists either;
//! - `iss` equals the configured issuer exactly, `aud` contains our client id and nothing else
//!   untrusted, and our own `azp` check (the library skips it);
//! - `exp` in the future (no leeway), `iat` at most [`IAT_MAX_FUTURE_SECS`] ahead and at most
//!   [`IAT_MAX_AGE_SECS`] old, `nonce` equal to the one we sent;
//! - `sub` present, 1 to [`MAX_SUBJECT_LEN`] characters; `at_hash` checked when present;
//! - an unknown signing key (`kid`) triggers one JWKS refetch, at most once per
//!   [`JWKS_REFETCH_COOLDOWN`], then one retry (key rotation without refetch amplification).
//!
//! Discovery refuses metadata whose `issuer` is not byte-for-byte the configured issuer, and
//! endpoints over plain `http` except on loopback hosts (the test IdP). The HTTP client follows
//! no redirects and has timeouts.
//!
//! Errors are [`LoginError`]s; [`LoginError::reason`] is a stable machine-readable code for the
//! audit record. No error message contains token material (codes, tokens, verifiers, nonces);
//! each error keeps the library error behind it as its `source`.
//!
//! The ID-token checks are in `verify`, the errors and their mapping from the library's in
//! `error`.

mod error;
mod verify;

pub use error::{Cause, GroupsError, LoginError, MetadataError, TokenExchangeError};

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    JsonWebKeySet, JsonWebKeySetUrl, LoginHint, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use error::{discovery_error, groups_error, idp_unreachable, invalid_settings, token_error};
use verify::{Checks, GroupsClaim, RpIdToken, verify_id_token};

/// ID-token signature algorithms we accept, regardless of the IdP's
/// `id_token_signing_alg_values_supported`: asymmetric only. Never `HS*` (the MAC key would be
/// our client secret, which the IdP's other clients may not know but the IdP's admins do, and
/// it invites algorithm confusion) and never `none`.
pub const ALLOWED_ID_TOKEN_ALGS: [CoreJwsSigningAlgorithm; 3] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
];

/// Scopes requested at the IdP (`openid` is always added by the library).
pub const SCOPES: [&str; 3] = ["email", "profile", "groups"];

/// How far in the future an ID token's `iat` may be (clock skew), in seconds.
pub const IAT_MAX_FUTURE_SECS: i64 = 60;
/// How old an ID token's `iat` may be, in seconds.
pub const IAT_MAX_AGE_SECS: i64 = 10 * 60;
/// Longest accepted `sub` claim, in characters.
pub const MAX_SUBJECT_LEN: usize = 255;
/// How long a [`PendingLogin`] stays usable, in seconds.
pub const PENDING_LOGIN_MAX_AGE_SECS: i64 = 10 * 60;
/// Minimum time between two JWKS refetches triggered by unknown signing keys.
pub const JWKS_REFETCH_COOLDOWN: Duration = Duration::from_secs(60);

/// Random bytes in `state` and `nonce` (256 bits; the bar is at least 128).
const RANDOM_TOKEN_BYTES: u32 = 32;
/// Overall timeout for one request to the IdP.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout for requests to the IdP.
const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

type RpIdTokenFields = IdTokenFields<
    GroupsClaim,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type RpTokenResponse = StandardTokenResponse<RpIdTokenFields, CoreTokenType>;
type RpClient = Client<
    GroupsClaim,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    RpTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
    EndpointMaybeSet,
>;

/// Where the IdP is and who we are to it.
#[derive(Clone, Debug)]
pub struct OidcSettings {
    /// The issuer identifier, exactly as the IdP spells it in its discovery document and tokens
    /// (a trailing slash matters).
    pub issuer_url: String,
    /// Our client id at the IdP.
    pub client_id: String,
    /// Our client secret (sent with HTTP Basic authentication to the token endpoint).
    pub client_secret: ClientSecret,
    /// Our callback URL, e.g. `https://portal.example/auth/callback`; registered at the IdP.
    pub redirect_url: String,
}

/// Who signed in: the verified claims of the ID token the portal cares about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The issuer (the configured one, which the token's `iss` matched exactly).
    pub issuer: String,
    /// The `sub` claim: stable, unique per issuer, 1–255 characters.
    pub subject: String,
    /// The `email` claim, if sent. Not an identifier: several subjects may share one.
    pub email: Option<String>,
    /// The `name` claim, if sent.
    pub name: Option<String>,
    /// The `groups` claim (empty if not sent).
    pub groups: Vec<String>,
    /// When the user last authenticated at the IdP (`auth_time`), if sent.
    pub auth_time: Option<DateTime<Utc>>,
    /// How the user authenticated (`amr`, e.g. `pwd`, `mfa`, `otp`); empty if not sent.
    #[serde(default)]
    pub amr: Vec<String>,
    /// The assurance level of that authentication (`acr`), if sent.
    #[serde(default)]
    pub acr: Option<String>,
}

impl Identity {
    /// The identity key: `(issuer, subject)`. Never email or name (A14).
    pub fn key(&self) -> (&str, &str) {
        (&self.issuer, &self.subject)
    }
}

/// The access token a login received: the portal keeps it (sealed) to ask the IdP's userinfo
/// endpoint for the user's current groups while the session lasts.
#[derive(Clone, Debug)]
pub struct AccessGrant {
    /// The token (its `Debug` is redacted).
    pub token: AccessToken,
    /// When the IdP said it expires, if it did.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Options for [`OidcClient::begin_with`].
#[derive(Clone, Debug, Default)]
pub struct BeginOptions {
    /// Ask the IdP to re-authenticate the user (`prompt=login`) even with an IdP session.
    pub force_login: bool,
    /// Require an authentication no older than this (`max_age`); [`OidcClient::finish`] then
    /// refuses ID tokens without a recent enough `auth_time` (step-up, B9).
    pub max_age: Option<Duration>,
    /// A hint for the IdP's login form (`login_hint`).
    pub login_hint: Option<String>,
}

/// What must be remembered, server-side and bound to the browser, between
/// [`OidcClient::begin`] and [`OidcClient::finish`]. Serialisable for storage; `Debug` redacts
/// the secrets. Use once: delete it before calling `finish`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PendingLogin {
    state: CsrfToken,
    nonce: Nonce,
    pkce_verifier: PkceCodeVerifier,
    created_at: DateTime<Utc>,
    #[serde(default)]
    max_age_secs: Option<u64>,
}

impl PendingLogin {
    /// The `state` sent to the IdP (it is in the authorization URL; a lookup key, not a secret
    /// once sent, but compare it with [`PendingLogin::state_matches`]).
    pub fn state(&self) -> &str {
        self.state.secret()
    }

    /// Whether the `state` returned on the callback is ours (constant time).
    pub fn state_matches(&self, returned: &str) -> bool {
        state_matches(self.state.secret(), returned)
    }

    /// When the login began.
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }

    /// Whether the pending login is older than [`PENDING_LOGIN_MAX_AGE_SECS`] at `now` (or
    /// implausibly in the future). [`OidcClient::finish`] refuses expired ones too.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        let age = now - self.created_at;
        age > TimeDelta::seconds(PENDING_LOGIN_MAX_AGE_SECS)
            || age < TimeDelta::seconds(-IAT_MAX_FUTURE_SECS)
    }
}

/// Constant-time comparison of the stored `state` with the one returned on the callback. Both
/// are hashed first, so neither content nor length leaks through timing.
pub fn state_matches(pending_state: &str, returned: &str) -> bool {
    let a = Sha256::digest(pending_state.as_bytes());
    let b = Sha256::digest(returned.as_bytes());
    !pending_state.is_empty() && bool::from(a.ct_eq(&b))
}

/// The IdP's signing keys plus a counter bumped on every refetch.
struct JwksState {
    keys: Arc<CoreJsonWebKeySet>,
    generation: u64,
}

/// A discovered OpenID Connect provider and our client registration there. Cheap to share
/// behind an `Arc`; all methods take `&self`.
pub struct OidcClient {
    client: RpClient,
    issuer: IssuerUrl,
    client_id: ClientId,
    jwks_uri: JsonWebKeySetUrl,
    jwks: RwLock<JwksState>,
    /// Serialises refetches and remembers when the last one started.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    http: reqwest::Client,
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Fetches the IdP's discovery document and JWKS. Refuses metadata whose `issuer` differs
    /// from `settings.issuer_url` in any byte (A13) and endpoints over plain http unless on a
    /// loopback host.
    pub async fn discover(settings: OidcSettings) -> Result<OidcClient, LoginError> {
        let (issuer, redirect) = check_settings(&settings)?;
        let http = http_client()?;
        let metadata = fetch_metadata(&http, &issuer).await?;
        let token_url = check_metadata(&metadata, &settings.issuer_url)?;
        let jwks_uri = metadata.jwks_uri().clone();
        // Keys only from the metadata's jwks_uri (ASVS 9.1.3), after the issuer check.
        let keys = JsonWebKeySet::fetch_async(&jwks_uri, &http)
            .await
            .map_err(discovery_error)?;
        let client_id = ClientId::new(settings.client_id);
        let client: RpClient = Client::from_provider_metadata(
            metadata,
            client_id.clone(),
            Some(settings.client_secret),
        )
        .set_token_uri(token_url)
        .set_redirect_uri(redirect);

        Ok(OidcClient {
            client,
            issuer,
            client_id,
            jwks_uri,
            jwks: RwLock::new(JwksState {
                keys: Arc::new(keys),
                generation: 0,
            }),
            last_refetch: tokio::sync::Mutex::new(None),
            http,
        })
    }

    /// The configured (and verified) issuer.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Our client id.
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// Starts a login: returns the IdP authorization URL to redirect the browser to and the
    /// [`PendingLogin`] to store server-side. Fresh random `state` and `nonce` (256 bits each),
    /// PKCE S256, scopes `openid email profile groups`, `response_type=code`.
    pub fn begin(&self) -> (url::Url, PendingLogin) {
        self.begin_with(&BeginOptions::default())
    }

    /// [`OidcClient::begin`] with options (forced re-authentication, `max_age`, `login_hint`).
    pub fn begin_with(&self, options: &BeginOptions) -> (url::Url, PendingLogin) {
        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                || CsrfToken::new_random_len(RANDOM_TOKEN_BYTES),
                || Nonce::new_random_len(RANDOM_TOKEN_BYTES),
            )
            .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
            .set_pkce_challenge(challenge);
        if options.force_login {
            request = request.add_prompt(CoreAuthPrompt::Login);
        }
        if let Some(max_age) = options.max_age {
            request = request.set_max_age(max_age);
        }
        if let Some(hint) = &options.login_hint {
            request = request.set_login_hint(LoginHint::new(hint.clone()));
        }
        let (url, state, nonce) = request.url();
        let pending = PendingLogin {
            state,
            nonce,
            pkce_verifier,
            created_at: Utc::now(),
            max_age_secs: options.max_age.map(|d| d.as_secs()),
        };
        (url, pending)
    }

    /// Whether the `iss` parameter of the authorization response (RFC 9207), if the IdP sent
    /// one, names our issuer. An absent parameter is accepted (not every IdP sends it).
    pub fn callback_issuer_matches(&self, iss: Option<&str>) -> bool {
        iss.is_none_or(|iss| iss == self.issuer.as_str())
    }

    /// Completes a login: exchanges `code` (with the PKCE verifier and client authentication)
    /// and verifies the ID token (see the module documentation). The caller has already checked
    /// `state` and removed `pending` from storage.
    pub async fn finish(&self, code: &str, pending: PendingLogin) -> Result<Identity, LoginError> {
        self.finish_with_grant(code, pending)
            .await
            .map(|(identity, _)| identity)
    }

    /// [`OidcClient::finish`], also returning the access token the IdP issued.
    pub async fn finish_with_grant(
        &self,
        code: &str,
        pending: PendingLogin,
    ) -> Result<(Identity, AccessGrant), LoginError> {
        if pending.is_expired(Utc::now()) {
            return Err(LoginError::LoginExpired);
        }
        let PendingLogin {
            nonce,
            pkce_verifier,
            max_age_secs,
            ..
        } = pending;
        let response = self.redeem_code(code, pkce_verifier).await?;
        let id_token = response.id_token().ok_or(LoginError::IdTokenMissing)?;
        let checks = Checks {
            nonce: &nonce,
            access_token: Some(response.access_token()),
            max_age: max_age_secs.map(Duration::from_secs),
            // After the exchange: the IdP minted the token just now.
            now: Utc::now(),
        };
        let identity = self.verify_with_key_refresh(id_token, &checks).await?;
        Ok((identity, access_grant(&response, checks.now)))
    }

    /// Exchanges `code` at the token endpoint, with the PKCE verifier and client authentication.
    async fn redeem_code(
        &self,
        code: &str,
        pkce_verifier: PkceCodeVerifier,
    ) -> Result<RpTokenResponse, LoginError> {
        if code.is_empty() {
            return Err(LoginError::TokenExchangeFailed(
                TokenExchangeError::EmptyCode,
            ));
        }
        self.client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(pkce_verifier)
            .request_async(&self.http)
            .await
            .map_err(token_error)
    }

    /// The user's groups as the IdP's userinfo endpoint reports them now, for the access token a
    /// login received; the answer must be about `subject`.
    pub async fn current_groups(
        &self,
        access_token: &AccessToken,
        subject: &str,
    ) -> Result<Vec<String>, GroupsError> {
        let request = self
            .client
            .user_info(
                access_token.clone(),
                Some(openidconnect::SubjectIdentifier::new(subject.to_owned())),
            )
            .map_err(|e| GroupsError::Unavailable(Box::new(e)))?;
        let claims: openidconnect::UserInfoClaims<GroupsClaim, CoreGenderClaim> = request
            .request_async(&self.http)
            .await
            .map_err(groups_error)?;
        Ok(claims.additional_claims().groups.clone())
    }

    /// Verifies an ID token with the current keys; on an unknown key, refetches the JWKS (rate
    /// limited) and tries once more.
    async fn verify_with_key_refresh(
        &self,
        id_token: &RpIdToken,
        checks: &Checks<'_>,
    ) -> Result<Identity, LoginError> {
        let (keys, generation) = self.current_keys();
        match verify_id_token(id_token, &self.issuer, &self.client_id, &keys, checks) {
            Err(LoginError::UnknownSigningKey(unknown)) => {
                if self.refresh_keys(generation).await? {
                    let (keys, _) = self.current_keys();
                    verify_id_token(id_token, &self.issuer, &self.client_id, &keys, checks)
                } else {
                    Err(LoginError::UnknownSigningKey(unknown))
                }
            }
            other => other,
        }
    }

    fn current_keys(&self) -> (Arc<CoreJsonWebKeySet>, u64) {
        let state = self.jwks.read().unwrap_or_else(|p| p.into_inner());
        (state.keys.clone(), state.generation)
    }

    /// Refetches the JWKS unless someone else already did since `seen_generation` (then `true`
    /// without a fetch) or the last refetch was less than [`JWKS_REFETCH_COOLDOWN`] ago (then
    /// `false`). Returns whether there are newer keys to try.
    async fn refresh_keys(&self, seen_generation: u64) -> Result<bool, LoginError> {
        let mut last = self.last_refetch.lock().await;
        if self.current_keys().1 != seen_generation {
            return Ok(true);
        }
        if last.is_some_and(|t| t.elapsed() < JWKS_REFETCH_COOLDOWN) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        let keys = JsonWebKeySet::fetch_async(&self.jwks_uri, &self.http)
            .await
            .map_err(discovery_error)?;
        let mut state = self.jwks.write().unwrap_or_else(|p| p.into_inner());
        state.keys = Arc::new(keys);
        state.generation += 1;
        Ok(true)
    }
}

/// The access token of a token response, with its expiry counted from `now`.
fn access_grant(response: &RpTokenResponse, now: DateTime<Utc>) -> AccessGrant {
    AccessGrant {
        token: response.access_token().clone(),
        expires_at: response
            .expires_in()
            .and_then(|d| TimeDelta::from_std(d).ok())
            .map(|d| now + d),
    }
}

/// The issuer and callback URLs from the settings, checked before anything is fetched.
fn check_settings(settings: &OidcSettings) -> Result<(IssuerUrl, RedirectUrl), LoginError> {
    let issuer = IssuerUrl::new(settings.issuer_url.clone())
        .map_err(invalid_settings("issuer_url is not a URL"))?;
    check_transport(issuer.url(), "issuer")?;
    let redirect = RedirectUrl::new(settings.redirect_url.clone())
        .map_err(invalid_settings("redirect_url is not a URL"))?;
    if settings.client_id.is_empty() {
        return Err(LoginError::InvalidSettings {
            what: "client_id is empty",
            source: None,
        });
    }
    Ok((issuer, redirect))
}

/// Checks the discovery document against the configured issuer and the transport rules, and
/// returns its token endpoint.
fn check_metadata(
    metadata: &CoreProviderMetadata,
    configured_issuer: &str,
) -> Result<TokenUrl, LoginError> {
    // Exact string comparison: no normalisation of case, port or trailing slash (A13).
    if metadata.issuer().as_str() != configured_issuer {
        return Err(LoginError::IssuerMismatch {
            configured: configured_issuer.to_owned(),
            reported: metadata.issuer().as_str().chars().take(200).collect(),
        });
    }
    check_transport(
        metadata.authorization_endpoint().url(),
        "authorization endpoint",
    )?;
    check_transport(metadata.jwks_uri().url(), "jwks_uri")?;
    let token_url = metadata
        .token_endpoint()
        .cloned()
        .ok_or(LoginError::DiscoveryFailed(MetadataError::NoTokenEndpoint))?;
    check_transport(token_url.url(), "token endpoint")?;
    Ok(token_url)
}

/// The HTTP client for talking to the IdP: no redirects (a redirect could carry the code or the
/// client credentials elsewhere), bounded time.
fn http_client() -> Result<reqwest::Client, LoginError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .build()
        .map_err(invalid_settings("cannot build the HTTP client"))
}

/// https everywhere, except plain http to a loopback host (local test IdPs).
fn check_transport(url: &url::Url, what: &'static str) -> Result<(), LoginError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err(LoginError::InsecureEndpoint(what)),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Largest discovery document we accept.
const MAX_METADATA_BYTES: usize = 256 * 1024;

/// GETs `<issuer>/.well-known/openid-configuration` and parses it (OpenID Connect Discovery
/// §4). The issuer comparison is the caller's.
async fn fetch_metadata(
    http: &reqwest::Client,
    issuer: &IssuerUrl,
) -> Result<CoreProviderMetadata, LoginError> {
    let url = issuer
        .join(".well-known/openid-configuration")
        .map_err(invalid_settings("issuer_url cannot be joined"))?;
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(idp_unreachable)?;
    let status = response.status();
    if !status.is_success() {
        return Err(LoginError::DiscoveryFailed(MetadataError::Status(status)));
    }
    let body = response.bytes().await.map_err(idp_unreachable)?;
    if body.len() > MAX_METADATA_BYTES {
        return Err(LoginError::DiscoveryFailed(MetadataError::TooLarge));
    }
    serde_json::from_slice(&body)
        .map_err(|e| LoginError::DiscoveryFailed(MetadataError::Malformed(e)))
}

#[cfg(test)]
mod tests;
