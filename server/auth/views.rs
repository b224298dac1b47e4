//! The sign-in page's view.

use askama::Template;

#[derive(Template)]
#[template(path = "auth/login.html")]
pub struct LoginPage {
    pub return_to: String,
    pub message: Option<String>,
}
