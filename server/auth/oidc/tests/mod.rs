//! Unit tests of the OIDC client: fixtures shared by the test modules (keys, claims, signed
//! tokens, a pending login).

mod client;
mod errors;
mod flow;
mod verify;

use super::verify::{RpIdTokenClaims, check_azp, check_iat};
use super::*;
use openidconnect::JwsSigningAlgorithm as _;
use openidconnect::core::CoreRsaPrivateSigningKey;
use openidconnect::{
    Audience, EndUserEmail, EndUserName, IdToken, IdTokenClaims, JsonWebKeyId, LocalizedClaim,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};

const ISSUER: &str = "https://idp.example.com";
const CLIENT: &str = "stackgate";
const NONCE: &str = "the-nonce-we-sent";

/// Throwaway RSA key for signing test tokens (generated for these tests only).
const KEY_A: &str = concat!(
    "-----BEGIN RSA PRIVATE KEY-----\n",
    "MIIEowIBAAKCAQEA0/5FfDm5acOORcWHpc+t7yydO2fjr5ZntJT5draqKiE85BsN\n",
    "nSEBw9nJ1qUYse56OnGugPJIiBa0v9NPKZsaaKbBDadDqfuexo+ds02GR1i8E7le\n",
    "MWsytt5vEMRg3BrY42JHBAoB335AgfaKEYECB2jiwRKcn3tudoxGHA1os3TF9vak\n",
    "3nu2IQd0YMrGCwVFn+G5df9GRKJtQXkOJGm34sosNReaaST13CUvKDZYeDBVZKpe\n",
    "hsDbGjSKGtj3O5c9BPfBCfq7TxXuDYGVFnV8d1LPKZlTZOgwSEzzm7QBMzOXFkRI\n",
    "jmb7neliz1aI4uqIL/XpJGuIoNQuCCuhMVbJxwIDAQABAoIBAAZ4LAaufEoN/bmD\n",
    "XbBhth0mb2XwtbIWFPQd178Xs/m1KfaMHM4+w58GdnJmd2p2rKQ78+dbfXsptjpk\n",
    "aHYMlbG75QhVomr9ksrcdyORqhdjTdoMPiOj8dhC0YDhfVM6PoQx65jj9Uqsv6s3\n",
    "qt794OH5AXKC7uSvD5/uh/UzM47GY0vJHL/6qw+P6G8/pIRZq+7eaIF5nbJ+DW2q\n",
    "dYsoICaRYHHoDD0QkYJFv9btbU3y8TlwqqGy+/2oxdi/a3gbCRa1N7qEXM22iiqv\n",
    "nc/waVJSKRr5vOUBgsQb0xO7br4epL18CEG6pssriBn7fr9KyK39hJC6mvrSmB6I\n",
    "jzwOFYECgYEA7JAlTeCtAiXg2QiakiwVyQ/cBwoKsF5r1OS/H6dh30DjTaCj6Alv\n",
    "9K/6kqvTUYYJovjNTU+LaN4JwJuzFnI6oEuSSyhz/jytpsIw/EBDPvPnCaGoWEvH\n",
    "ue/2hR2YIX7GLDnzg+rVdKHfuczupF4dnVGHZNEDu7hiCYDcm7PcsNMCgYEA5WlT\n",
    "UbtSaPGOB/8XJQYUUHYfYIRCg/ckLF3DwsL2A87DJ+M8o2Ip7FQyiG5mlNmLJ57S\n",
    "TlpUdj+nRC6aEwX4G3ogB1Kqql/Nq31DOKM5PzYs3nk9zCequ0H9cqU2LlqmZTZU\n",
    "IRXiWzs6ZLg3q9eMaLjGQPdaA4JbPPXQVMWACr0CgYAlK/lQpW9KGR2dvOZc9aRu\n",
    "tZlDWeaYFB4pk9AcbzbH1/BfsFBRE7qN3mEnTuyjsMYu352S+l7TmaA6rbyUWFqx\n",
    "+W4BdVfUqUA4JeeAm7B1Yen573b+eNnnc7du71mKWdtV8706C1qDOzRmg7c0CL3q\n",
    "jHcT9mv5wV1WVPNVXAvflQKBgGJJY8cKiF4pz34hjhrwpddrJDpHr++1/Kt9aJeS\n",
    "y7AJ75axRpOBRRDZaeUF17FCGtpYsyWakcEvuEv/40bvMcMj6YD5q+DettEYE6q6\n",
    "U5Z/cW3HZ/CFtiIQPbPWkIX/lHacdiLOq3IGyBfKzR80dBWRxG6lCs2iFdDiR+Vp\n",
    "0FfJAoGBAMD1ta3GUyfLTr/y/H2dNFHCB+s+prua+k9d7/vYQlkaaogYy1QAAa8f\n",
    "d+E3eAWVxhgoigZjzkyaWFKKGTf5X3/3MQuYrNLVejBFGTaCEPv0aQdOlgq76oow\n",
    "p3KN06Ip1QZ3oH1zCmFf+Hz8NP7XVMDmtQO6lqdGksL/VfWUvd80\n",
    "-----END RSA PRIVATE KEY-----\n",
);
/// A second throwaway RSA key: "the attacker's", or the IdP's next key.
const KEY_B: &str = concat!(
    "-----BEGIN RSA PRIVATE KEY-----\n",
    "MIIEogIBAAKCAQEArQY95MJyxpS9Qut1vlx8ij/gRdSwJ3mAjT59ZJfrv4CUmd1S\n",
    "CTc3RwLoEIrVcwqUA4s3FkMwZRY/Ez9w+VXPFXwhfYeDE3Veyac4wPxr29Vo7Cj2\n",
    "X7jBpK2E+IX1uWYFp1A4l3DrXnvWfNUeCHpnbQAwutlbHxGmSdLlo1KZIvWk2IRc\n",
    "2Q5fP/v11aYV+dCOmpF8m/QCvL6PRbaMyx1/f68GoQaqrbCz/zocYMkg1Nd2mkVO\n",
    "Rc/crnv2wCCL0O1QcXudt7eji83MVj+60BYr58tXBTr8eQ50Aj/MaSM9fizL3rsZ\n",
    "Q8Q2y0EAa6NU4sqJT7cjAwAjaKfX1LKhgr7QbQIDAQABAoIBABfzy8Ct3Ha6I4Mu\n",
    "lmOuaP04f4MbQPGOA+pJstEoqNWfZrLwLQmij6/wapDTr13YIoplDNCzp3DvBfdT\n",
    "qn+RzfOi9f3rMw2QC3muARDSQNozbm129DhnGsOB0+0VmmE6iuDRHax1UNgJG7W3\n",
    "SQuSalvwEU7khRVFe7gvjmOwLQvmLEpk1EU+RNg8aQy5UDTWmchocE0bifHLGG1Q\n",
    "CPqiEN/s9/bB+SEs3RgtySwK92aKayw6K3VamaLH41XEQX7vZMhexw7gxXzOZ6TO\n",
    "Z4YKBK1Nk3PSsN2D5M25nercokAp+eowC4hJeQd5XscnzEcv4tEUgAfgXjjqrq4b\n",
    "Jf2pMJECgYEA2NjPG4VqntA40UHy2fC5jBoq5P0ctEwf4bhQIzBT3nzun84rF6f3\n",
    "hFTDLL/YkID21esjAmsGSCA9oMTuXBtiOvdn2+4hYudN4ZDvB5yPi0zOEExFeiKH\n",
    "Cogbs1ShipfpHQ8FPRvOppCsnJkIDVTGDSmqVDrXrDDapgscLu7kPgUCgYEAzEPZ\n",
    "WrhYc6hYNLo8CH4cnx7cqTZp9qlAIVRx3+LaWO4oUHvA0ENy1VA6xGekEZcU6HNG\n",
    "l6jI9bXqhxa7wGpVaKOyHRRhmmYrygE0asiYigXMVy0KUF+tmEzTlyemiHsPolWz\n",
    "W0dvcDtqNlmb/J/jcUzTVyUJorwg5dxxCwMNbUkCgYA6g/8XaSBFbOD4LviusRQQ\n",
    "53rNwjO9v5EW4xrU9BSdxE7MVuEwCAZ18j2c1MRG8lYpkcMnwuO2EOUwfhPoTQdr\n",
    "7BldstvViZ9tkCPAhRIDQB2XLk3NUIXqZKI8+UiCUs34JnZ+cAOK1R2PQIh4uHid\n",
    "UrIA+sP6VlCaYAMh8xsqVQKBgHQbTP0oM/7p/dla0qzxIkvAOyVj7K9sXSuU2HWu\n",
    "ePZ7ySaWcW7wJ+HgjMb/Ml9dRWErxUCHjFM+aGUJIweoaYvlIGUvJJui39ke/jCE\n",
    "fVBXI2OaEnbFK+OaJ9uPijWh3a0kkaKc5FcjLqheHzBlod7REIBEaUm7Lef6ebcM\n",
    "sSEhAoGAVqmi1nXLtZjXYdjy9s57G40f99Tk0j64WFIuQo92p0rsf6ghXhHFHSzX\n",
    "4RuGog8YEgoSbhXKlY0gjVDJyj/sgvUnmVqfhZjvHfsCLl59GQJkrfKnIqdp/9Au\n",
    "45Z1nFBmK8LraRkOE9HGwXr8UmKLf0XEz3dy7fHumR+y3Z8gxII=\n",
    "-----END RSA PRIVATE KEY-----\n",
);

fn key(pem: &str, kid: Option<&str>) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(pem, kid.map(|k| JsonWebKeyId::new(k.to_owned())))
        .expect("test key parses")
}

fn jwks(keys: &[&CoreRsaPrivateSigningKey]) -> CoreJsonWebKeySet {
    JsonWebKeySet::new(keys.iter().map(|k| k.as_verification_key()).collect())
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Claims a well-behaved IdP would send for our login at `now`.
fn claims(now: DateTime<Utc>) -> RpIdTokenClaims {
    let mut name = LocalizedClaim::new();
    name.insert(None, EndUserName::new("Alice Anders".to_owned()));
    IdTokenClaims::new(
        IssuerUrl::new(ISSUER.to_owned()).unwrap(),
        vec![Audience::new(CLIENT.to_owned())],
        now + TimeDelta::minutes(10),
        now,
        StandardClaims::new(SubjectIdentifier::new("sub-alice".to_owned()))
            .set_email(Some(EndUserEmail::new("alice@example.com".to_owned())))
            .set_name(Some(name)),
        GroupsClaim {
            groups: vec!["payments-requesters".to_owned()],
        },
    )
    .set_nonce(Some(Nonce::new(NONCE.to_owned())))
    .set_auth_time(Some(now - TimeDelta::seconds(5)))
}

fn sign(claims: RpIdTokenClaims, key: &CoreRsaPrivateSigningKey) -> RpIdToken {
    IdToken::new(
        claims,
        key,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        None,
        None,
    )
    .expect("sign test token")
}

/// Checks with our nonce only (no access token, no `max_age`), at `now`.
fn checks_at(nonce: &Nonce, now: DateTime<Utc>) -> Checks<'_> {
    Checks {
        nonce,
        access_token: None,
        max_age: None,
        now,
    }
}

fn verify_at(
    token: &RpIdToken,
    keys: &CoreJsonWebKeySet,
    now: DateTime<Utc>,
) -> Result<Identity, LoginError> {
    let nonce = Nonce::new(NONCE.to_owned());
    verify(token, keys, &checks_at(&nonce, now))
}

fn verify(
    token: &RpIdToken,
    keys: &CoreJsonWebKeySet,
    checks: &Checks<'_>,
) -> Result<Identity, LoginError> {
    verify_id_token(
        token,
        &IssuerUrl::new(ISSUER.to_owned()).unwrap(),
        &ClientId::new(CLIENT.to_owned()),
        keys,
        checks,
    )
}

fn reason(r: Result<Identity, LoginError>) -> &'static str {
    match r {
        Ok(id) => panic!("expected rejection, got {id:?}"),
        Err(e) => e.reason(),
    }
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// HMAC-SHA256, as an attacker holding a shared secret would sign an `HS256` token.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// The JWS signing input: header and payload, base64url-encoded, joined by a dot.
fn signing_input(header: &serde_json::Value, payload: &serde_json::Value) -> String {
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}

/// A compact JWS with any header, signed (or not) by hand.
fn raw_token(header: serde_json::Value, payload: &serde_json::Value, sig: &[u8]) -> String {
    format!("{}.{}", signing_input(&header, payload), b64(sig))
}

/// A token MACed with HMAC-SHA256 under `secret`, whatever its header says.
fn hmac_token(header: serde_json::Value, payload: &serde_json::Value, secret: &[u8]) -> RpIdToken {
    let sig = hmac_sha256(secret, signing_input(&header, payload).as_bytes());
    raw_token(header, payload, &sig).parse().unwrap()
}

fn payload(now: DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER, "aud": CLIENT, "sub": "sub-alice", "nonce": NONCE,
        "iat": now.timestamp(), "exp": (now + TimeDelta::minutes(10)).timestamp(),
    })
}

/// A pending login with known secrets, begun at `created_at`.
fn pending(created_at: DateTime<Utc>) -> PendingLogin {
    PendingLogin {
        state: CsrfToken::new("state-value-123".to_owned()),
        nonce: Nonce::new("nonce-value-456".to_owned()),
        pkce_verifier: PkceCodeVerifier::new("verifier-value-789".to_owned()),
        created_at,
        max_age_secs: None,
    }
}
