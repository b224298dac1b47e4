//! ID-token verification: algorithms, signatures and keys, claims.

use super::*;

// ---- algorithm pinning (A7, A8) -------------------------------------------------------

#[test]
fn allowed_algorithms_are_asymmetric_only() {
    for alg in ALLOWED_ID_TOKEN_ALGS {
        let name = serde_json::to_value(&alg).unwrap();
        let name = name.as_str().unwrap();
        assert!(!name.starts_with("HS"), "{name} is symmetric");
        assert!(!name.eq_ignore_ascii_case("none"), "none is allowed");
        assert!(!alg.uses_shared_secret(), "{name} uses a shared secret");
    }
    assert!(ALLOWED_ID_TOKEN_ALGS.contains(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256));
    assert!(!ALLOWED_ID_TOKEN_ALGS.contains(&CoreJwsSigningAlgorithm::None));
}

#[test]
fn hs256_keyed_with_the_client_secret_is_rejected() {
    let now = now();
    let header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    let token = hmac_token(header, &payload(now), b"stackgate-test-secret");
    let keys = jwks(&[&key(KEY_A, Some("a"))]);
    assert_eq!(reason(verify_at(&token, &keys, now)), "alg_not_allowed");
}

#[test]
fn alg_none_is_rejected_in_any_spelling() {
    let now = now();
    let keys = jwks(&[&key(KEY_A, Some("a"))]);
    let token: RpIdToken = raw_token(serde_json::json!({"alg": "none"}), &payload(now), b"")
        .parse()
        .unwrap();
    assert_eq!(reason(verify_at(&token, &keys, now)), "alg_not_allowed");
    // "NoNe" is not an algorithm at all: the token does not even parse.
    let odd = raw_token(serde_json::json!({"alg": "NoNe"}), &payload(now), b"");
    assert!(odd.parse::<RpIdToken>().is_err());
}

// ---- signature and keys (A6, A9) ------------------------------------------------------

#[test]
fn a_valid_token_yields_the_identity() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let id = verify_at(&sign(claims(now), &a), &jwks(&[&a]), now).expect("valid");
    assert_eq!(id.issuer, ISSUER);
    assert_eq!(id.subject, "sub-alice");
    assert_eq!(id.key(), (ISSUER, "sub-alice"));
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.name.as_deref(), Some("Alice Anders"));
    assert_eq!(id.groups, vec!["payments-requesters".to_owned()]);
    assert_eq!(
        id.auth_time.map(|t| t.timestamp()),
        Some(now.timestamp() - 5)
    );
}

#[test]
fn right_kid_wrong_key_is_rejected() {
    let now = now();
    let idp = key(KEY_A, Some("a"));
    let attacker = key(KEY_B, Some("a"));
    let token = sign(claims(now), &attacker);
    assert_eq!(
        reason(verify_at(&token, &jwks(&[&idp]), now)),
        "signature_invalid"
    );
}

#[test]
fn flipped_signature_is_rejected() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let token = sign(claims(now), &a).to_string();
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let tampered: RpIdToken = format!("{rest}.{}", sig.into_iter().collect::<String>())
        .parse()
        .unwrap();
    assert_eq!(
        reason(verify_at(&tampered, &jwks(&[&a]), now)),
        "signature_invalid"
    );
}

#[test]
fn embedded_jwk_header_is_ignored() {
    // A token signed by the attacker, carrying the attacker's public key in its header.
    let now = now();
    let idp = key(KEY_A, Some("a"));
    let attacker = key(KEY_B, Some("a"));
    let good = sign(claims(now), &attacker).to_string();
    let mut parts = good.splitn(3, '.');
    let (_, body, sig) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
    let header = serde_json::json!({
        "alg": "RS256", "kid": "a",
        "jwk": serde_json::to_value(attacker.as_verification_key()).unwrap(),
        "jku": "https://attacker.example/jwks",
    });
    // The header changed, so the attacker re-signs the new signing input.
    let input = format!("{}.{body}", b64(header.to_string().as_bytes()));
    let sig2 = attacker
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .unwrap();
    let token: RpIdToken = format!("{input}.{}", b64(&sig2)).parse().unwrap();
    assert_ne!(sig, b64(&sig2));
    assert_eq!(
        reason(verify_at(&token, &jwks(&[&idp]), now)),
        "signature_invalid"
    );
}

#[test]
fn missing_kid_is_fine_with_one_key_and_ambiguous_with_two() {
    let now = now();
    let a = key(KEY_A, None);
    let b = key(KEY_B, None);
    let token = sign(claims(now), &a);
    verify_at(&token, &jwks(&[&a]), now).expect("single key");
    assert_eq!(
        reason(verify_at(&token, &jwks(&[&a, &b]), now)),
        "id_token_invalid"
    );
}

#[test]
fn unknown_kid_is_reported_as_unknown_signing_key() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let b = key(KEY_B, Some("b"));
    let token = sign(claims(now), &b);
    assert_eq!(
        reason(verify_at(&token, &jwks(&[&a]), now)),
        "unknown_signing_key"
    );
}

// ---- claims (A2–A5, A10) --------------------------------------------------------------

#[test]
fn issuer_audience_and_subject_rules() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let check = |c: RpIdTokenClaims| verify_at(&sign(c, &a), &keys, now);

    for iss in [
        "https://idp.example.com/",
        "https://IDP.example.com",
        "https://evil.example",
    ] {
        let c = claims(now).set_issuer(IssuerUrl::new(iss.to_owned()).unwrap());
        assert_eq!(reason(check(c)), "id_token_issuer_mismatch", "{iss}");
    }
    let c = claims(now).set_audiences(vec![Audience::new("other".to_owned())]);
    assert_eq!(reason(check(c)), "aud_mismatch");
    let c = claims(now).set_audiences(vec![]);
    assert_eq!(reason(check(c)), "aud_mismatch");
    let c = claims(now).set_audiences(vec![
        Audience::new(CLIENT.to_owned()),
        Audience::new("untrusted".to_owned()),
    ]);
    assert_eq!(reason(check(c)), "aud_mismatch");

    let c = claims(now).set_subject(SubjectIdentifier::new(String::new()));
    assert_eq!(reason(check(c)), "sub_invalid");
    let c = claims(now).set_subject(SubjectIdentifier::new("s".repeat(256)));
    assert_eq!(reason(check(c)), "sub_invalid");
    let c = claims(now).set_subject(SubjectIdentifier::new("s".repeat(255)));
    assert_eq!(check(c).expect("255 chars is fine").subject.len(), 255);
}

#[test]
fn missing_sub_is_rejected() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let mut body = payload(now);
    body.as_object_mut().unwrap().remove("sub");
    let header = serde_json::json!({"alg": "RS256", "kid": "a"});
    let input = signing_input(&header, &body);
    let sig = a
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .unwrap();
    let raw = format!("{input}.{}", b64(&sig));
    // Without `sub` the claims do not deserialise: the token is refused before any use.
    match raw.parse::<RpIdToken>() {
        Err(_) => {}
        Ok(t) => assert!(verify_at(&t, &jwks(&[&a]), now).is_err()),
    }
}

#[test]
fn azp_rules() {
    let us = ClientId::new(CLIENT.to_owned());
    let other = ClientId::new("other".to_owned());
    let one = vec![Audience::new(CLIENT.to_owned())];
    let two = vec![
        Audience::new(CLIENT.to_owned()),
        Audience::new("trusted".to_owned()),
    ];
    assert!(check_azp(&one, None, &us).is_ok());
    assert!(check_azp(&one, Some(&us), &us).is_ok());
    assert_eq!(
        check_azp(&one, Some(&other), &us).unwrap_err().reason(),
        "azp_mismatch"
    );
    assert_eq!(
        check_azp(&two, None, &us).unwrap_err().reason(),
        "azp_mismatch"
    );
    assert!(check_azp(&two, Some(&us), &us).is_ok());
    assert!(check_azp(&two, Some(&other), &us).is_err());

    // And wired into verification.
    let now = now();
    let a = key(KEY_A, Some("a"));
    let token = sign(claims(now).set_authorized_party(Some(other)), &a);
    assert_eq!(reason(verify_at(&token, &jwks(&[&a]), now)), "azp_mismatch");
    let token = sign(claims(now).set_authorized_party(Some(us)), &a);
    verify_at(&token, &jwks(&[&a]), now).expect("azp = us");
}

#[test]
fn iat_window() {
    let now = now();
    assert!(check_iat(now, now).is_ok());
    assert!(check_iat(now + TimeDelta::seconds(60), now).is_ok());
    assert!(check_iat(now + TimeDelta::seconds(61), now).is_err());
    assert!(check_iat(now - TimeDelta::seconds(600), now).is_ok());
    assert!(check_iat(now - TimeDelta::seconds(601), now).is_err());

    // Through the verifier, with its clock pinned to `now`.
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let with_iat = |iat: DateTime<Utc>| {
        let c = claims(now)
            .set_issue_time(iat)
            .set_expiration(now + TimeDelta::minutes(30));
        verify_at(&sign(c, &a), &keys, now)
    };
    assert_eq!(
        reason(with_iat(now + TimeDelta::seconds(120))),
        "iat_out_of_range"
    );
    assert_eq!(
        reason(with_iat(now - TimeDelta::minutes(11))),
        "iat_out_of_range"
    );
    with_iat(now + TimeDelta::seconds(30)).expect("small skew is fine");
    with_iat(now - TimeDelta::minutes(9)).expect("nine minutes old is fine");
}

#[test]
fn exp_rules() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let with_exp = |exp: DateTime<Utc>| {
        let c = claims(now)
            .set_issue_time(now - TimeDelta::seconds(30))
            .set_expiration(exp);
        verify_at(&sign(c, &a), &keys, now)
    };
    assert_eq!(
        reason(with_exp(now - TimeDelta::seconds(1))),
        "id_token_expired"
    );
    with_exp(now + TimeDelta::seconds(30)).expect("boundary: 30 s left");
    // The same token, verified later, has expired.
    let token = sign(claims(now), &a);
    let later = now + TimeDelta::minutes(10) + TimeDelta::seconds(1);
    assert_eq!(reason(verify_at(&token, &keys, later)), "id_token_expired");
}

#[test]
fn nonce_must_match() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let c = claims(now).set_nonce(Some(Nonce::new("someone-elses".to_owned())));
    assert_eq!(
        reason(verify_at(&sign(c, &a), &keys, now)),
        "nonce_mismatch"
    );
    let c = claims(now).set_nonce(None);
    assert_eq!(
        reason(verify_at(&sign(c, &a), &keys, now)),
        "nonce_mismatch"
    );
}

#[test]
fn at_hash_is_checked_when_present() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let nonce = Nonce::new(NONCE.to_owned());
    let real = AccessToken::new("real-access-token".to_owned());
    let other = AccessToken::new("other-access-token".to_owned());
    let token = IdToken::new(
        claims(now),
        &a,
        CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        Some(&real),
        None,
    )
    .unwrap();
    let checks = |at| Checks {
        nonce: &nonce,
        access_token: Some(at),
        max_age: None,
        now,
    };
    verify(&token, &keys, &checks(&real)).expect("matching at_hash");
    assert_eq!(
        reason(verify(&token, &keys, &checks(&other))),
        "at_hash_mismatch"
    );
}

#[test]
fn max_age_requires_recent_auth_time() {
    let now = now();
    let a = key(KEY_A, Some("a"));
    let keys = jwks(&[&a]);
    let nonce = Nonce::new(NONCE.to_owned());
    let checks = Checks {
        nonce: &nonce,
        access_token: None,
        max_age: Some(Duration::from_secs(300)),
        now,
    };
    verify(&sign(claims(now), &a), &keys, &checks).expect("auth 5 s ago");
    let old = claims(now).set_auth_time(Some(now - TimeDelta::minutes(30)));
    assert_eq!(
        reason(verify(&sign(old, &a), &keys, &checks)),
        "auth_time_too_old"
    );
    let none = claims(now).set_auth_time(None);
    assert_eq!(
        reason(verify(&sign(none, &a), &keys, &checks)),
        "auth_time_too_old"
    );
}

#[test]
fn groups_claim_shapes() {
    let parse = |v: serde_json::Value| serde_json::from_value::<GroupsClaim>(v).unwrap().groups;
    assert_eq!(parse(serde_json::json!({})), Vec::<String>::new());
    assert_eq!(
        parse(serde_json::json!({"groups": null})),
        Vec::<String>::new()
    );
    assert_eq!(
        parse(serde_json::json!({"groups": "a"})),
        vec!["a".to_owned()]
    );
    assert_eq!(
        parse(serde_json::json!({"groups": ["a", "b"]})),
        vec!["a".to_owned(), "b".to_owned()]
    );
    assert!(serde_json::from_value::<GroupsClaim>(serde_json::json!({"groups": 5})).is_err());
}
