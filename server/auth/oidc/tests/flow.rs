//! The login flow around the token: pending logins, `state`, transport rules.

use super::*;

#[test]
fn pending_login_debug_redacts_and_serde_round_trips() {
    let p = pending(now());
    let debug = format!("{p:?}");
    for secret in ["state-value-123", "nonce-value-456", "verifier-value-789"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let json = serde_json::to_string(&p).unwrap();
    let back: PendingLogin = serde_json::from_str(&json).unwrap();
    assert_eq!(back.state(), "state-value-123");
    assert_eq!(back.nonce.secret(), "nonce-value-456");
    assert_eq!(back.pkce_verifier.secret(), "verifier-value-789");
    assert_eq!(back.created_at(), p.created_at());
}

#[test]
fn pending_login_expires_after_ten_minutes() {
    let now = now();
    assert!(!pending(now - TimeDelta::minutes(9)).is_expired(now));
    assert!(pending(now - TimeDelta::minutes(11)).is_expired(now));
    assert!(pending(now + TimeDelta::minutes(5)).is_expired(now));
}

#[test]
fn state_comparison() {
    assert!(state_matches("abc", "abc"));
    assert!(!state_matches("abc", "abd"));
    assert!(!state_matches("abc", "abcd"));
    assert!(!state_matches("abc", ""));
    assert!(
        !state_matches("", ""),
        "an empty stored state never matches"
    );
    assert!(pending(now()).state_matches("state-value-123"));
}

#[test]
fn transport_rules() {
    let ok = |u: &str| check_transport(&url::Url::parse(u).unwrap(), "x").is_ok();
    assert!(ok("https://idp.example.com"));
    assert!(ok("http://127.0.0.1:8080"));
    assert!(ok("http://localhost:8080"));
    assert!(ok("http://[::1]:8080"));
    assert!(!ok("http://idp.example.com"));
    assert!(!ok("http://10.0.0.1"));
    assert!(!ok("ftp://idp.example.com"));
}
