//! The portal's two cookies, parsed and written with the `cookie` crate: the session cookie and
//! the pre-auth cookie of a login in progress. Both are HttpOnly and SameSite=Lax; with an https
//! public URL they are `Secure` and carry the `__Host-` prefix.

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use cookie::time::Duration;
use cookie::{Cookie, SameSite};

/// Cookie names and attributes for this deployment.
#[derive(Debug, Clone, Copy)]
pub struct Cookies {
    pub secure: bool,
}

impl Cookies {
    pub fn session_name(&self) -> &'static str {
        if self.secure {
            "__Host-stackgate_session"
        } else {
            "stackgate_session"
        }
    }

    pub fn login_name(&self) -> &'static str {
        if self.secure {
            "__Host-stackgate_login"
        } else {
            "stackgate_login"
        }
    }

    /// The value of the cookie `name` in the request's `Cookie` headers.
    pub fn get(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// A `Set-Cookie` value; `max_age_secs` 0 deletes the cookie.
    pub fn set(&self, name: &str, value: &str, max_age_secs: i64) -> String {
        Cookie::build((name.to_string(), value.to_string()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(Duration::seconds(max_age_secs))
            .build()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            axum::http::HeaderValue::from_static(
                "a=1; stackgate_session=tok; stackgate_session_x=no",
            ),
        );
        let c = Cookies { secure: false };
        assert_eq!(c.get(&h, "stackgate_session").as_deref(), Some("tok"));
        assert_eq!(c.get(&h, "missing"), None);
    }

    #[test]
    fn secure_cookies_are_host_prefixed_and_secure() {
        let c = Cookies { secure: true };
        let v = c.set(c.session_name(), "tok", 60);
        assert!(v.starts_with("__Host-stackgate_session=tok"), "{v}");
        for part in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age=60"] {
            assert!(v.contains(part), "{v} lacks {part}");
        }
        let plain = Cookies { secure: false }.set("stackgate_login", "", 0);
        assert!(
            plain.contains("Max-Age=0") && !plain.contains("Secure"),
            "{plain}"
        );
    }
}
