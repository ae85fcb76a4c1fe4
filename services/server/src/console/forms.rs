//! What the site features' forms share: a refusal shown next to the form
//! that caused it ([`FormError`]), the answer of a page that shows one
//! (422, else 200), and the notice of what the last action did.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use maud::{html, Markup};
use rampart_http::ApiError;

use super::page::ConsoleError;

/// A refusal to show next to the form (by its id) that caused it.
pub struct FormError {
    pub form: String,
    pub message: String,
}

impl FormError {
    /// The domain's refusal of what form `form` asked, kept for the page;
    /// anything else (a failure, a refusal by role or by feature) is the
    /// page's answer as it is.
    pub fn of(form: &str, e: impl Into<ApiError>) -> Result<Self, ConsoleError> {
        match e.into() {
            ApiError::Invalid(message)
            | ApiError::Conflict(message)
            | ApiError::NotFound(message)
            | ApiError::BadRequest(message) => Ok(Self { form: form.to_owned(), message }),
            other => Err(ConsoleError(other)),
        }
    }

    /// A refusal made by the console itself (a field it could not read).
    pub fn new(form: &str, message: impl Into<String>) -> Self {
        Self { form: form.to_owned(), message: message.into() }
    }
}

/// The id of the paragraph that holds form `form`'s refusal (the form's
/// controls name it in `aria-describedby`).
pub fn error_id(form: &str) -> String {
    format!("{form}-error")
}

/// The refusal of form `form`, if `error` is about it.
pub fn error_for(error: Option<&FormError>, form: &str) -> Markup {
    html! {
        @if let Some(e) = error.filter(|e| e.form == form) {
            p.error role="alert" id=(error_id(form)) { (e.message) }
        }
    }
}

/// A page that may show a refusal: 422 when it does.
pub fn answer(error: Option<&FormError>, page: Html<String>) -> Response {
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    (status, page).into_response()
}

/// What the last action did, shown at the top of the page after its redirect.
pub fn notice(text: Option<&str>) -> Markup {
    html! { @if let Some(text) = text { p.notice role="status" id="notice" { (text) } } }
}

/// The values of the repeated field `name` of a form read as pairs.
pub fn values(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty()).collect()
}

/// A list typed into one field: ids or addresses separated by commas,
/// spaces or new lines.
pub fn list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_list_splits_on_commas_spaces_and_lines() {
        assert_eq!(list(" pc-1, pc-2\npc-3;;pc-4 "), ["pc-1", "pc-2", "pc-3", "pc-4"]);
        assert!(list("  ").is_empty());
    }

    #[test]
    fn only_the_domains_refusals_stay_next_to_the_form() {
        let kept = FormError::of("f", ApiError::Invalid("name is required".into())).ok().unwrap();
        assert_eq!((kept.form.as_str(), kept.message.as_str()), ("f", "name is required"));
        assert!(FormError::of("f", ApiError::Forbidden("no".into())).is_err());
        assert!(error_for(Some(&kept), "g").into_string().is_empty());
        assert!(error_for(Some(&kept), "f").into_string().contains("id=\"f-error\""));
    }
}
