//! Authenticated encryption for what the portal keeps between two requests of one browser: the
//! login in progress (state, nonce, PKCE verifier) and a session's IdP access token.
//!
//! The key is derived (HKDF-SHA256) from the browser's cookie token, which the database never
//! holds (it stores only the token's hash): neither the database nor the cookie alone opens a
//! sealed value. XChaCha20-Poly1305 with a random 192-bit nonce; the fields stored beside the
//! sealed value in the clear (such as a login's return path and start time) are its associated
//! data, so changing them in the database makes it fail to open.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// What a sealed value is for: each purpose has its own key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    PendingLogin,
    AccessToken,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::PendingLogin => b"stackgate pending login v1",
            Purpose::AccessToken => b"stackgate access token v1",
        }
    }
}

fn cipher(secret: &str, purpose: Purpose) -> Option<XChaCha20Poly1305> {
    let mut key = Key::default();
    Hkdf::<Sha256>::new(None, secret.as_bytes())
        .expand(purpose.info(), &mut key)
        .ok()?;
    Some(XChaCha20Poly1305::new(&key))
}

/// Encrypts `plain` under a key derived from `secret`, bound to `aad`. Base64url text.
pub fn seal(secret: &str, purpose: Purpose, aad: &[u8], plain: &[u8]) -> Option<String> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher(secret, purpose)?
        .encrypt(&nonce, Payload { msg: plain, aad })
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// Reverses [`seal`]; `None` when the secret, the purpose or the associated data differ, or the
/// sealed text was altered.
pub fn open(secret: &str, purpose: Purpose, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if bytes.len() < 24 {
        return None;
    }
    let (nonce, body) = bytes.split_at(24);
    cipher(secret, purpose)?
        .decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_with_its_secret_purpose_and_associated_data() {
        let plain = b"{\"state\":\"abc\",\"nonce\":\"n\",\"pkce_verifier\":\"v\"}";
        let aad = b"/requests/1\x001764000000000";
        let sealed = seal("cookie-1", Purpose::PendingLogin, aad, plain).unwrap_or_default();
        assert!(!sealed.is_empty());
        assert!(!sealed.contains("pkce"));
        let opened = open("cookie-1", Purpose::PendingLogin, aad, &sealed);
        assert_eq!(opened.as_deref(), Some(&plain[..]));
        // A fresh nonce each time: the same input seals differently.
        let again = seal("cookie-1", Purpose::PendingLogin, aad, plain).unwrap_or_default();
        assert_ne!(sealed, again);
        assert_eq!(open("cookie-2", Purpose::PendingLogin, aad, &sealed), None);
        assert_eq!(open("cookie-1", Purpose::AccessToken, aad, &sealed), None);
        assert_eq!(
            open(
                "cookie-1",
                Purpose::PendingLogin,
                b"/evil\x001764000000000",
                &sealed
            ),
            None
        );
        let mut tampered = URL_SAFE_NO_PAD.decode(&sealed).unwrap_or_default();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        let tampered = URL_SAFE_NO_PAD.encode(tampered);
        assert_eq!(
            open("cookie-1", Purpose::PendingLogin, aad, &tampered),
            None
        );
        assert_eq!(open("cookie-1", Purpose::PendingLogin, aad, "short"), None);
    }
}
