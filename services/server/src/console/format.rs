//! Small helpers the pages share: reading a form's or a query's optional
//! values, and links to a computer.

use rampart_http::ApiError;

use super::page::ConsoleError;

/// A value that was given: present and not blank.
pub(super) fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A number that was given, or a refusal naming `what`.
pub(super) fn number(value: &Option<String>, what: &str) -> Result<Option<i64>, ConsoleError> {
    given(value)
        .map(|v| v.parse().map_err(|_| ConsoleError(ApiError::Invalid(format!("{what} '{v}' is not a number")))))
        .transpose()
}

/// The console page of computer `id` (of `slave`, on a master).
pub(super) fn computer_link(id: &str, slave: Option<&str>) -> String {
    match slave {
        Some(slave) => format!("/console/computers/{}?slave={}", urlencode(id), urlencode(slave)),
        None => format!("/console/computers/{}", urlencode(id)),
    }
}

/// `9998000` as `9,998,000`.
pub(super) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Percent-encodes everything but unreserved characters (a path segment or query value).
pub(super) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
