//! What every console page answers with: a whole document around a body
//! ([`bare_page`]), and a failure shown as a page with the API's status and
//! message ([`ConsoleError`]).

use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use rampart_http::ApiError;

use super::assets;

/// A console page that failed: the API's error (so the same status and the
/// same message), shown as a page.
#[derive(Debug)]
pub struct ConsoleError(pub ApiError);

impl<E: Into<ApiError>> From<E> for ConsoleError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = match &self.0 {
            ApiError::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "Console page failed.");
                "internal error; see the server log".to_owned()
            }
            other => other.to_string(),
        };
        let body = bare_page(
            "Not possible",
            html! {
                main class="refusal" {
                    h1 { "Not possible" }
                    p role="alert" { (message) }
                    p { a href="/console" { "Back to the console" } }
                }
            },
        );
        (status, body).into_response()
    }
}

/// A page's answer.
pub type PageResult = Result<Html<String>, ConsoleError>;

/// A whole HTML document with the console's script and style, and `body`.
pub fn bare_page(title: &str, body: Markup) -> Html<String> {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rampart" }
                link rel="stylesheet" href=(assets::style_path());
                script src=(assets::script_path()) defer {}
            }
            body { (body) }
        }
    };
    Html(markup.into_string())
}
