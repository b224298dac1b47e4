//! Step-up for production decisions (bar B9, ASVS 6.8.4): a decision on a production request
//! counts only from a sign-in at the IdP that is recent (`auth_time` no older than
//! `STACKGATE_STEP_UP_MAX_AGE_SECONDS`) and, when the policy says so, made with the required
//! methods (`amr` ⊇ `STACKGATE_STEP_UP_AMR`, e.g. `mfa`) at the required level (`acr` =
//! `STACKGATE_STEP_UP_ACR`). Otherwise the decider is sent to sign in again with `max_age`, and
//! comes back to the decision; the API answers 401 with RFC 9470's
//! `insufficient_user_authentication`.

use crate::config::{Config, StepUpPolicy};
use crate::error::{AppError, urlencode};
use crate::web::CurrentUser;

/// Why the decider's sign-in is not enough for this decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepUp {
    /// The sign-in's time is unknown or older than the policy's maximum age: signing in again
    /// is enough.
    Stale { max_age_seconds: i64 },
    /// The sign-in did not use methods the policy requires (e.g. `mfa`).
    Methods {
        max_age_seconds: i64,
        missing: Vec<String>,
        used: Vec<String>,
    },
    /// The sign-in's assurance level (`acr`) is not the required one.
    Level {
        max_age_seconds: i64,
        required: String,
        actual: Option<String>,
    },
}

/// Whether `user`'s sign-in satisfies the step-up policy of `config` at `now_ms`.
pub fn check(user: &CurrentUser, config: &Config, now_ms: i64) -> Result<(), StepUp> {
    let policy: &StepUpPolicy = &config.step_up;
    let max_age_seconds = policy.max_age_seconds;
    let missing: Vec<String> = policy
        .amr
        .iter()
        .filter(|m| !user.amr.contains(m))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(StepUp::Methods {
            max_age_seconds,
            missing,
            used: user.amr.clone(),
        });
    }
    if let Some(required) = policy
        .acr
        .as_ref()
        .filter(|r| user.acr.as_ref() != Some(*r))
    {
        return Err(StepUp::Level {
            max_age_seconds,
            required: required.clone(),
            actual: user.acr.clone(),
        });
    }
    // An `auth_time` ahead of our clock (the IdP's runs fast) counts as just now.
    match user.auth_time {
        Some(t) if now_ms - t <= max_age_seconds * 1000 => Ok(()),
        _ => Err(StepUp::Stale { max_age_seconds }),
    }
}

/// A sign-in age in words: `15 minutes`, `1 hour`, `90 seconds`.
pub fn age_words(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl StepUp {
    /// The sign-in age the decision needs, in seconds.
    pub fn max_age_seconds(&self) -> i64 {
        match self {
            StepUp::Stale { max_age_seconds }
            | StepUp::Methods {
                max_age_seconds, ..
            }
            | StepUp::Level {
                max_age_seconds, ..
            } => *max_age_seconds,
        }
    }

    /// What a fresh sign-in alone cannot fix, in words for the decider; `None` when signing in
    /// again is enough.
    pub fn needs(&self) -> Option<String> {
        match self {
            StepUp::Stale { .. } => None,
            StepUp::Methods { missing, used, .. } => {
                let what = if missing.iter().any(|m| m == "mfa") {
                    "MFA (multi-factor authentication)".to_string()
                } else {
                    format!("a sign-in with {}", missing.join(", "))
                };
                let used = if used.is_empty() {
                    "did not say how you signed in".to_string()
                } else {
                    format!("reports that you signed in with {}", used.join(", "))
                };
                Some(format!(
                    "This decision needs {what}: the identity provider {used}. Sign in again \
                     using {}; if the identity provider does not offer it to you, ask the \
                     platform team to enrol you.",
                    missing.join(", ")
                ))
            }
            StepUp::Level {
                required, actual, ..
            } => Some(format!(
                "This decision needs a sign-in at assurance level {required} (the identity \
                 provider reports {}). Sign in again with the stronger method your identity \
                 provider offers; if it offers none, ask the platform team.",
                actual.as_deref().unwrap_or("none")
            )),
        }
    }

    /// The error that sends the decider to sign in again (with `max_age`) and back to
    /// `return_to`, a path of this site.
    pub fn into_error(self, return_to: &str) -> AppError {
        let max_age = self.max_age_seconds();
        AppError::StepUpRequired {
            login_url: format!(
                "/auth/login?max_age={max_age}&return_to={}",
                urlencode(return_to)
            ),
            max_age,
            needs: self.needs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::Roles;

    const NOW: i64 = 1_800_000_000_000;

    fn user(auth_time: Option<i64>, amr: &[&str], acr: Option<&str>) -> CurrentUser {
        CurrentUser {
            id: "u".into(),
            issuer: "i".into(),
            subject: "s".into(),
            name: "n".into(),
            email: None,
            roles: Roles::default(),
            csrf_token: String::new(),
            source_ip: None,
            groups_checked_at: 0,
            auth_time,
            amr: amr.iter().map(|m| m.to_string()).collect(),
            acr: acr.map(str::to_string),
            session: None,
        }
    }

    fn config(amr: &[&str], acr: Option<&str>) -> Config {
        let mut c = crate::config::for_tests();
        c.step_up.amr = amr.iter().map(|m| m.to_string()).collect();
        c.step_up.acr = acr.map(str::to_string);
        c
    }

    #[test]
    fn a_sign_in_within_the_maximum_age_passes_and_an_older_or_unknown_one_does_not() {
        let c = config(&[], None);
        assert_eq!(c.step_up.max_age_seconds, 900);
        let ok = |t| check(&user(t, &["pwd"], None), &c, NOW);
        assert_eq!(ok(Some(NOW)), Ok(()));
        assert_eq!(ok(Some(NOW - 900_000)), Ok(()), "exactly the maximum age");
        assert_eq!(ok(Some(NOW + 5_000)), Ok(()), "the IdP's clock runs ahead");
        let stale = Err(StepUp::Stale {
            max_age_seconds: 900,
        });
        assert_eq!(ok(Some(NOW - 900_001)), stale);
        assert_eq!(ok(None), stale, "no auth_time at all");
    }

    #[test]
    fn required_methods_must_all_have_been_used() {
        let c = config(&["mfa"], None);
        assert_eq!(
            check(&user(Some(NOW), &["pwd", "mfa"], None), &c, NOW),
            Ok(())
        );
        let refused = check(&user(Some(NOW), &["pwd"], None), &c, NOW);
        let Err(step_up) = refused else {
            panic!("a sign-in without mfa passed")
        };
        assert!(matches!(step_up, StepUp::Methods { ref missing, .. } if missing == &["mfa"]));
        let needs = step_up.needs().unwrap_or_default();
        assert!(needs.contains("This decision needs MFA"), "{needs}");
        assert!(needs.contains("signed in with pwd"), "{needs}");
        // Both methods required: one is not enough.
        let c = config(&["mfa", "hwk"], None);
        assert!(check(&user(Some(NOW), &["pwd", "mfa"], None), &c, NOW).is_err());
        // The methods count only with a recent sign-in.
        let c = config(&["mfa"], None);
        assert_eq!(
            check(&user(Some(NOW - 3_600_000), &["mfa"], None), &c, NOW),
            Err(StepUp::Stale {
                max_age_seconds: 900
            })
        );
    }

    #[test]
    fn a_required_level_must_be_the_one_reported() {
        let c = config(&[], Some("urn:stackgate:acr:mfa"));
        assert_eq!(
            check(
                &user(Some(NOW), &[], Some("urn:stackgate:acr:mfa")),
                &c,
                NOW
            ),
            Ok(())
        );
        for acr in [Some("urn:stackgate:acr:pwd"), None] {
            let refused = check(&user(Some(NOW), &[], acr), &c, NOW);
            assert!(matches!(refused, Err(StepUp::Level { .. })), "{acr:?}");
        }
    }

    #[test]
    fn ages_read_in_the_largest_whole_unit() {
        assert_eq!(age_words(900), "15 minutes");
        assert_eq!(age_words(3600), "1 hour");
        assert_eq!(age_words(90), "90 seconds");
        assert_eq!(age_words(60), "1 minute");
    }

    #[test]
    fn the_error_sends_the_decider_to_sign_in_again_and_back_to_the_decision() {
        let error = StepUp::Stale {
            max_age_seconds: 900,
        }
        .into_error("/requests/abc#decision");
        let AppError::StepUpRequired {
            login_url,
            max_age,
            needs,
        } = error
        else {
            panic!("not a step-up error")
        };
        assert_eq!(
            login_url,
            "/auth/login?max_age=900&return_to=%2Frequests%2Fabc%23decision"
        );
        assert_eq!(max_age, 900);
        assert_eq!(needs, None);
    }
}
