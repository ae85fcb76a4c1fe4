//! The console's one script and one style sheet, embedded in the binary
//! and served under a name holding a hash of their content, so a browser
//! may keep them for a year and still gets the new ones after an upgrade.

use std::sync::LazyLock;

use axum::{
    extract::Path,
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
};
use rampart_http::ApiError;
use sha2::{Digest, Sha256};

const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The first 12 hex digits of the SHA-256 of both files.
static HASH: LazyLock<String> = LazyLock::new(|| {
    let digest = Sha256::new().chain_update(SCRIPT).chain_update(STYLE).finalize();
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
});

/// Where pages load the script from.
pub fn script_path() -> String {
    format!("/console/assets/console.{}.js", *HASH)
}

/// Where pages load the style sheet from.
pub fn style_path() -> String {
    format!("/console/assets/console.{}.css", *HASH)
}

/// `GET /console/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.strip_prefix("console.").and_then(|rest| rest.split_once('.')) {
        Some((hash, "js")) if hash == HASH.as_str() => (SCRIPT, "text/javascript; charset=utf-8"),
        Some((hash, "css")) if hash == HASH.as_str() => (STYLE, "text/css; charset=utf-8"),
        _ => return ApiError::NotFound(format!("no console asset '{file}'")).into_response(),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_paths_carry_the_content_hash() {
        assert_eq!(HASH.len(), 12);
        assert!(script_path().ends_with(&format!(".{}.js", *HASH)));
        assert!(style_path().ends_with(&format!(".{}.css", *HASH)));
        assert!(!SCRIPT.contains("eval("), "the console's script evaluates no text");
    }
}
