//! The Ed25519 key that signs audit checkpoints and evidence packs. The private key lives outside
//! the database (an environment variable or a file); verifiers need only the public key, written
//! as base64 of its 32 bytes or as a PEM `PUBLIC KEY`. A key is named by its id: the first 16 hex
//! digits of SHA-256 over the public key's bytes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// The private signing key (redacted in `Debug`, zeroed when dropped by the dalek type).
#[derive(Clone)]
pub struct AuditKey(SigningKey);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AuditKey(key id {}, private part redacted)",
            self.key_id()
        )
    }
}

/// Why a key or signature could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

impl AuditKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> AuditKey {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        AuditKey(SigningKey::from_bytes(&seed))
    }

    /// Reads a PKCS#8 PEM private key, or the base64 of the 32-byte seed.
    pub fn parse(text: &str) -> Result<AuditKey, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return SigningKey::from_pkcs8_pem(text)
                .map(AuditKey)
                .map_err(|e| KeyError(format!("not an Ed25519 PKCS#8 PEM private key ({e})")));
        }
        let bytes = B64
            .decode(text)
            .map_err(|_| KeyError("neither a PEM private key nor base64".into()))?;
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            KeyError(format!(
                "a base64 Ed25519 seed is 32 bytes, this is {}",
                bytes.len()
            ))
        })?;
        Ok(AuditKey(SigningKey::from_bytes(&seed)))
    }

    /// The private key as PKCS#8 PEM (for `audit-keygen`'s file).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError(format!("cannot encode the key: {e}")))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn key_id(&self) -> String {
        self.public().key_id()
    }

    /// The signature of `message`, base64.
    pub fn sign(&self, message: &[u8]) -> String {
        B64.encode(self.0.sign(message).to_bytes())
    }
}

/// A public key that checks signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Reads base64 of the 32 bytes, or a PEM `PUBLIC KEY`.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return VerifyingKey::from_public_key_pem(text)
                .map(PublicKey)
                .map_err(|e| KeyError(format!("not an Ed25519 PEM public key ({e})")));
        }
        let bytes = B64
            .decode(text)
            .map_err(|_| KeyError("a public key is base64 of 32 bytes, or PEM".into()))?;
        let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            KeyError(format!(
                "an Ed25519 public key is 32 bytes, this is {}",
                bytes.len()
            ))
        })?;
        VerifyingKey::from_bytes(&raw)
            .map(PublicKey)
            .map_err(|_| KeyError("not a valid Ed25519 public key".into()))
    }

    /// Base64 of the 32 bytes.
    pub fn encoded(&self) -> String {
        B64.encode(self.0.to_bytes())
    }

    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.to_bytes())[..8])
    }

    /// Whether `signature` (base64) is this key's signature of `message` (strict verification:
    /// no malleable or small-order signatures).
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = B64.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.0.verify(message, &sig).is_ok() && self.0.verify_strict(message, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_from_pem_and_from_its_seed_and_signs_what_its_public_key_checks() {
        let key = AuditKey::generate();
        let pem = key.to_pem().unwrap();
        let again = AuditKey::parse(&pem).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        let seed = B64.encode(key.0.to_bytes());
        assert_eq!(AuditKey::parse(&seed).unwrap().key_id(), key.key_id());
        let public = PublicKey::parse(&key.public().encoded()).unwrap();
        let sig = key.sign(b"head");
        assert!(public.verifies(b"head", &sig));
        assert!(!public.verifies(b"head2", &sig));
        assert!(!AuditKey::generate().public().verifies(b"head", &sig));
        assert!(format!("{key:?}").contains("redacted"));
        assert!(AuditKey::parse("c2hvcnQ=").is_err());
    }
}
